// Unit tests of the widget's pure helpers (no DOM): language choice, link
// splitting, out-of-hours links, localised times. The whole widget is tested
// in a real browser by tests/browser/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickLanguage, translator, formatWhen, supported } from '../src/i18n.js';
import { splitLinks, alternativeHref } from '../src/dom.js';

test('language: data-lang, then <html lang>, then the channel default, within what the channel offers', () => {
  const channel = { language: 'en', languages: ['en', 'fr'] };
  assert.equal(pickLanguage(undefined, 'fr-CA', channel), 'fr');
  assert.equal(pickLanguage('en', 'fr', channel), 'en');
  assert.equal(pickLanguage(undefined, 'de', { language: 'fr', languages: ['fr'] }), 'fr');
  assert.equal(pickLanguage(undefined, 'fr', { language: 'en', languages: ['en'] }), 'en', 'page language not offered by the channel');
  assert.equal(pickLanguage(undefined, '', null), 'en');
  assert.equal(supported('FR_be'), 'fr');
  assert.equal(supported('es'), null);
});

test('translator fills placeholders and falls back to English', () => {
  assert.equal(translator('fr')('position', { n: 3 }), "Vous êtes en position 3 dans la file d'attente.");
  assert.equal(translator('fr')('start'), 'Démarrer le chat');
  assert.equal(translator('xx')('send'), 'Send');
});

test('every English text has a French translation', async () => {
  const en = translator('en');
  const fr = translator('fr');
  const src = await import('node:fs').then((fs) => fs.readFileSync(new URL('../src/i18n.js', import.meta.url), 'utf8'));
  const keys = [...src.slice(src.indexOf('const en'), src.indexOf('const fr')).matchAll(/^  (\w+):/gm)].map((m) => m[1]);
  assert.ok(keys.length > 40);
  for (const k of keys) {
    if (k === 'message' || k === 'messages') continue; // same word in both languages
    assert.notEqual(fr(k), en(k), `French text for ${k}`);
  }
});

test('links: only http(s) URLs, trailing punctuation kept as text, everything else plain', () => {
  assert.deepEqual(splitLinks('See https://acme.example/a?b=1. Thanks'), [
    { text: 'See ' },
    { text: 'https://acme.example/a?b=1', href: 'https://acme.example/a?b=1' },
    { text: '. Thanks' },
  ]);
  assert.deepEqual(splitLinks('javascript:alert(1) <b>x</b>'), [{ text: 'javascript:alert(1) <b>x</b>' }]);
  assert.deepEqual(splitLinks('(http://x.example)'), [{ text: '(' }, { text: 'http://x.example', href: 'http://x.example/' }, { text: ')' }]);
  assert.deepEqual(splitLinks(''), []);
});

test('out-of-hours alternatives become tel:, mailto: and http(s) links only', () => {
  assert.equal(alternativeHref({ kind: 'phone', value: '+33 1 23 45 67 89' }), 'tel:+33123456789');
  assert.equal(alternativeHref({ kind: 'email', value: 'help@acme.example' }), 'mailto:help@acme.example');
  assert.equal(alternativeHref({ kind: 'link', value: 'https://acme.example/book' }), 'https://acme.example/book');
  assert.equal(alternativeHref({ kind: 'link', value: 'javascript:alert(1)' }), null);
  assert.equal(alternativeHref({ kind: 'email', value: 'not an address' }), null);
});

test('next opening time is shown in the visitor time zone and language', () => {
  const saved = process.env.TZ;
  process.env.TZ = 'Asia/Tokyo';
  try {
    const en = formatWhen('en', '2026-11-27T08:00:00Z');
    assert.match(en, /Friday/);
    assert.match(en, /05:00\s?PM/);
    const fr = formatWhen('fr', '2026-11-27T08:00:00Z');
    assert.match(fr, /vendredi/);
    assert.match(fr, /17:00/);
  } finally {
    process.env.TZ = saved;
  }
});

test('files: the review list takes at most the batch limit and refuses files over the size limit', async () => {
  const { review } = await import('../src/files.js');
  const limits = { max_files_per_batch: 5, max_file_bytes: 5242880 };
  const f = (name, size) => ({ name, size });
  const six = [1, 2, 3, 4, 5, 6].map((i) => f('f' + i, 10));
  assert.deepEqual(review(0, six, limits).add, []);
  assert.equal(review(0, six, limits).tooMany, 5);
  assert.equal(review(3, six.slice(0, 3), limits).tooMany, 5);
  assert.equal(review(2, six.slice(0, 3), limits).add.length, 3);
  const r = review(0, [f('ok.pdf', 5242880), f('big.mov', 5242881)], limits);
  assert.deepEqual(r.add.map((x) => x.name), ['ok.pdf']);
  assert.deepEqual(r.tooBig.map((x) => x.name), ['big.mov']);
});

test('file sizes are short and localised', async () => {
  const { formatSize } = await import('../src/i18n.js');
  assert.equal(formatSize('en', 5242880), '5 MB');
  assert.equal(formatSize('en', 1536), '1.5 KB');
  assert.equal(formatSize('fr', 1536), '1,5 Ko');
  assert.equal(formatSize('en', 12), '12 B');
});
