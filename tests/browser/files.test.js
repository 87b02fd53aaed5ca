'use strict';
// F1–F4, E2, E3 in a real browser against the real gateway: pick several
// files, review and remove one, send with progress, cancel one in flight,
// the 6-file and >5 MB alerts, the server's refusal mapped to an alert, and
// downloading a sent file. No agent is needed: a queued visitor can already
// send files (they reach the agent when one joins).

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { BASE, launch, openPage, login, shot, axe, stored, endConversation } = require('./harness');

let browser;
let current = null;
const unique = (p) => `${p} ${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;

before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});
afterEach(async () => {
  if (current) {
    await endConversation(current);
    await current.context().close();
  }
  current = null;
});

const file = (name, content) => ({ name, mimeType: 'application/octet-stream', buffer: Buffer.isBuffer(content) ? content : Buffer.from(content) });

/** Opens the picker with the "Attach file" button and chooses `files`. */
async function pick(page, files, lang = 'en') {
  const [chooser] = await Promise.all([
    page.waitForEvent('filechooser'),
    page.getByRole('button', { name: lang === 'fr' ? 'Joindre un fichier' : 'Attach file', exact: true }).click(),
  ]);
  assert.ok(chooser.isMultiple(), 'the picker allows several files');
  await chooser.setFiles(files);
}

async function serverMessages(page) {
  const s = await stored(page);
  const r = await fetch(`${BASE}/api/v1/conversations/${s.conv.id}/messages`, {
    headers: { Authorization: 'Bearer ' + s.conv.token },
  });
  assert.equal(r.status, 200);
  return (await r.json()).messages;
}

/** A fresh page with a chat started (composer ready); `tray` lists the files waiting to be sent. */
async function chatPage() {
  const { page, errors } = await openPage(browser);
  current = page;
  const w = await login(page, unique('Jane'));
  await w.message.waitFor();
  return { page, errors, w, tray: w.host.locator('ul.tray li.file') };
}

test('F1–F4: pick several, remove one, send with progress, cancel one in flight, download', async () => {
  const { page, errors, w, tray } = await chatPage();
  const row = (name) => tray.filter({ hasText: name });

  // F1 + F2: several files, reviewed with name, size and Remove.
  await pick(page, [file('a.txt', 'hello A'), file('b.png', Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex')), file('c.txt', 'hello C')]);
  await tray.nth(2).waitFor();
  assert.equal(await tray.count(), 3);
  assert.match(await row('a.txt').innerText(), /a\.txt[\s\S]*7 B/);
  await shot(page, '20-files-review');
  await axe(page, 'files review');
  await row('b.png').getByRole('button', { name: 'Remove', exact: true }).click();
  await row('b.png').waitFor({ state: 'detached' });
  assert.equal(await tray.count(), 2);

  // One more file whose upload the network holds, to see it in flight.
  let held = null;
  let sawHeld;
  const heldSeen = new Promise((resolve) => (sawHeld = resolve));
  await page.route(
    (url) => url.pathname.endsWith('/files'),
    (route) => {
      if (route.request().postDataBuffer().includes('filename="slow.bin"')) {
        held = route;
        sawHeld();
      } else route.continue();
    },
  );
  await pick(page, [file('slow.bin', Buffer.alloc(300 * 1024, 7))]);
  await row('slow.bin').waitFor();
  await w.send.click();

  // F3: the sent ones arrive as messages with a Download button; the held one shows progress and Cancel upload.
  await w.messages('a.txt').getByRole('button', { name: 'Download', exact: true }).waitFor();
  await w.messages('c.txt').getByRole('button', { name: 'Download', exact: true }).waitFor();
  await heldSeen;
  const slow = row('slow.bin');
  await slow.locator('progress').waitFor();
  assert.equal(await slow.getAttribute('data-state'), 'uploading');
  await shot(page, '21-files-uploading');
  await slow.getByRole('button', { name: 'Cancel upload', exact: true }).click();
  await slow.waitFor({ state: 'detached' });
  assert.equal(await tray.count(), 0, 'cancelling removes the file from the batch');
  await held.abort().catch(() => {});
  await page.unroute((url) => url.pathname.endsWith('/files'));
  const names = (await serverMessages(page)).filter((m) => m.attachment).map((m) => m.attachment.name);
  assert.deepEqual(names.sort(), ['a.txt', 'c.txt']);

  // F4: download works, with the file's name and bytes.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    w.messages('a.txt').getByRole('button', { name: 'Download', exact: true }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'a.txt');
  assert.equal(fs.readFileSync(await download.path(), 'utf8'), 'hello A');
  await shot(page, '22-files-sent');
  await axe(page, 'files sent');
  assert.deepEqual(errors, []);
});

test('E3 + E2: six files, or one over 5 MB, are refused with an alert; server refusals are mapped', async () => {
  const { page, errors, w, tray } = await chatPage();

  await pick(page, [1, 2, 3, 4, 5, 6].map((i) => file(`f${i}.txt`, `file ${i}`)));
  await w.band.filter({ hasText: 'Only 5 files can be sent at once' }).waitFor();
  assert.equal(await w.band.getAttribute('role'), 'alert');
  assert.equal(await tray.count(), 0, 'the batch of six is refused');
  await shot(page, '23-files-too-many');

  await pick(page, [file('huge video.mov', Buffer.alloc(5 * 1024 * 1024 + 1)), file('ok.txt', 'fine')]);
  await w.band.filter({ hasText: '“huge video.mov” is too large' }).waitFor();
  assert.match(await w.band.innerText(), /5 MB/);
  await tray.filter({ hasText: 'ok.txt' }).waitFor();
  assert.equal(await tray.count(), 1, 'only the file within the limit is kept');
  await shot(page, '24-files-too-big');

  // Exactly 5 MB passes the widget's check and the server's.
  await pick(page, [file('exact.bin', Buffer.alloc(5 * 1024 * 1024))]);
  await tray.nth(1).waitFor();
  await w.send.click();
  await w.messages('exact.bin').getByRole('button', { name: 'Download', exact: true }).waitFor({ timeout: 60000 });
  await w.messages('ok.txt').getByRole('button', { name: 'Download', exact: true }).waitFor();

  // A type the server refuses (sniffed from the content, whatever the name).
  await pick(page, [file('holiday.jpg', '<!DOCTYPE html><html><script>alert(1)</script></html>')]);
  await w.send.click();
  const failed = tray.filter({ hasText: 'holiday.jpg' });
  await failed.and(w.host.locator('[data-state=failed]')).waitFor();
  await w.band.filter({ hasText: '“holiday.jpg” cannot be sent' }).waitFor();
  await failed.getByRole('button', { name: 'Retry', exact: true }).waitFor();
  await failed.getByRole('button', { name: 'Remove', exact: true }).click();
  await failed.waitFor({ state: 'detached' });
  assert.equal(await w.band.innerText(), '', 'removing the refused file clears its alert');
  assert.deepEqual(errors, []);
});

test('French: the file controls speak French', async () => {
  const { page } = await openPage(browser, { lang: 'fr' });
  current = page;
  await login(page, unique('Jeanne'), { lang: 'fr' });
  await pick(page, [file('devis.pdf', '%PDF-1.4 test')], 'fr');
  const row = page.locator('frontdesk-widget ul.tray li.file');
  await row.getByRole('button', { name: 'Retirer', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Envoyer', exact: true }).click();
  await page
    .locator('frontdesk-widget li.msg', { hasText: 'devis.pdf' })
    .getByRole('button', { name: 'Télécharger', exact: true })
    .waitFor();
});
