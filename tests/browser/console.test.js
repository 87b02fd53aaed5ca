'use strict';
// The admin console (issue 13) in a real browser, against the real gateway
// and a real XMPP agent: log in with the keyboard; create a chatbot channel,
// reorder its options, copy its embed code and load a page with exactly
// that snippet; edit a welcome text; the widget preview of the editor's
// draft (without saving, without a visitor API call); a refused field; the live view while a
// visitor waits and the agent takes the chat; transcripts and their
// exports; GDPR erase with its audit entry; API tokens (the secret shown
// once, then revoked); a user who logs in, changes role and password, and
// is deleted; tenants as a super-admin; axe and keyboard use on every
// screen; French once the console speaks it (forms, refused fields, the
// business-hours check).
//
// The tests run in order and build on each other (the channel the first one
// creates, the chat the live view watches); each names what it needs.
//
// Environment (besides harness.js's): FRONTDESK_CONSOLE_USER and
// FRONTDESK_CONSOLE_PASSWORD, an admin account (`scripts/browser-tests`
// creates it with `frontdesk admin create-user`); FRONTDESK_CONSOLE_ROOT_USER
// and FRONTDESK_CONSOLE_ROOT_PASSWORD, a super-admin (optional: the tenants
// test is skipped without one); FRONTDESK_DATA_DIR, the
// gateway's data directory, if the erase test is to look at the file store
// itself (optional); FRONTDESK_PBX_SYNC_CMD, a `frontdesk pbx sync` of the
// sample Asterisk configuration into this gateway's database (the PBX
// test is skipped without it).

const { test, before, after } = require('node:test');
const { execSync } = require('node:child_process');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { BASE, PAGES, STEP, launch, openPage, login, shot, axe, stored, endConversation, until } = require('./harness');
const { startAgent } = require('./agent');

const USER = process.env.FRONTDESK_CONSOLE_USER;
const PASSWORD = process.env.FRONTDESK_CONSOLE_PASSWORD;
if (!USER || !PASSWORD) throw new Error('FRONTDESK_CONSOLE_USER and FRONTDESK_CONSOLE_PASSWORD must name a console admin');
const DATA_DIR = process.env.FRONTDESK_DATA_DIR;
const ROOT_USER = process.env.FRONTDESK_CONSOLE_ROOT_USER;
const ROOT_PASSWORD = process.env.FRONTDESK_CONSOLE_ROOT_PASSWORD;

// This run's mark, in the channel key and the visitors' e-mail addresses: a
// gateway used for an earlier run (by hand) has chats of the same names.
const RUN = Date.now().toString(36).slice(-5);
const KEY = `boiler-shop-${RUN}`; // the channel the tests create
const email = (name) => `${name.toLowerCase().replace(/ /g, '.')}.${RUN}@example.com`;
const SALES = { id: 'sales', label: 'Buy a boiler', welcome: 'Thanks! A sales advisor is on the way.', queue: '600' };
const REPAIR = { id: 'repair', label: 'Fix my boiler', welcome: 'Sorry to hear that. A technician will answer.', queue: '600' };
const VIEWPORT = { width: 1280, height: 800 };

let browser;
let admin; // { context, page, errors }: a logged-in console
let agent = null;
const state = {}; // what one test leaves for the next: { snippet, chat: { visitor, email, id } }

before(async () => {
  browser = await launch();
  admin = await consoleContext();
  await logIn(admin.page);
});
after(async () => {
  await Promise.all([browser?.close(), agent?.stop()]);
});

/** A new browser context on the console, 1280×800, collecting script errors. */
async function consoleContext({ locale } = {}) {
  const context = await browser.newContext({ viewport: VIEWPORT, locale });
  const errors = [];
  const page = await watchedPage(context, errors);
  return { context, page, errors };
}

/**
 * A new page of `context` that adds to `errors` its script errors and the
 * answers no screen should get: a missing page or asset, a server error.
 * (The script's API calls may be refused, 401, 404 or 422, and show it: the
 * flows under test check that; browsers ask for /favicon.ico on their own.)
 */
async function watchedPage(context, errors) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && errors.push(m.text()));
  page.on('response', (r) => {
    const missing = r.status() === 404 && r.request().resourceType() !== 'fetch' && new URL(r.url()).pathname !== '/favicon.ico';
    if (missing || r.status() >= 500) errors.push(`${r.status()} ${r.url()}`);
  });
  return page;
}

async function logIn(page, lang, user = USER, password = PASSWORD) {
  await page.goto(`${BASE}/admin/login${lang ? '?lang=' + lang : ''}`);
  await page.locator('#username').fill(user);
  await page.locator('#password').fill(password);
  await Promise.all([page.waitForURL(`${BASE}/admin/live**`), page.locator('#password').press('Enter')]);
}

/** A login of `user` that is refused: the page says so. */
async function loginRefused(page, user, password) {
  await page.goto(`${BASE}/admin/login`);
  await page.locator('#username').fill(user);
  await page.locator('#password').fill(password);
  await page.locator('#password').press('Enter');
  await page.getByRole('alert').filter({ hasText: 'Wrong user name or password.' }).waitFor();
}

/** The text of the error note a field points to (aria-describedby). */
function noteOf(input) {
  return input.evaluate((el) => document.getElementById(el.getAttribute('aria-describedby'))?.textContent);
}

/** Clicks `button`, accepting the confirmation it asks for; returns its question. */
async function confirmed(page, button) {
  let asked = null;
  page.once('dialog', (dialog) => {
    asked = dialog.message();
    dialog.accept();
  });
  await button.click();
  return () => asked;
}

/** Navigates the logged-in console to `p` and waits for its h1. */
async function go(p, page = admin.page) {
  const response = await page.goto(BASE + p);
  assert.equal(response.status(), 200, `GET ${p}`);
  await page.locator('h1').waitFor();
  return page;
}

const btn = (page, name) => page.getByRole('button', { name, exact: true });
const link = (page, name) => page.getByRole('link', { name, exact: true });
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Creates `channel` through the admin API from a console page (with its CSRF token). */
async function createChannel(page, channel) {
  return page.evaluate(async (body) => {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const r = await fetch('/api/v1/admin/channels', {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify(body),
    });
    return { status: r.status, body: await r.text() };
  }, channel);
}

/** The channel as the admin API has it (a GET: no CSRF token needed). */
async function apiChannel(key) {
  const r = await admin.context.request.get(`${BASE}/api/v1/admin/channels/${encodeURIComponent(key)}`);
  assert.equal(r.status(), 200);
  return r.json();
}

/** Waits until the channel editor's script has filled the form from the API. */
async function editorLoaded(page, options) {
  await page.waitForFunction(() => document.querySelector('#f-name').value !== '');
  if (options) await page.locator('#options > li').nth(options - 1).waitFor();
}

/** Each route row's conditions and destination, in the editor's order. */
async function routeValues(page) {
  return page.locator('#routes > li').evaluateAll((rows) =>
    rows.map((r) => [r.querySelector('[name=route-when]').value, r.querySelector('[name=route-to]').value]));
}

/** The ids of the options, in the editor's order. */
async function optionIds(page) {
  return page.locator('#options > li [name=opt-id]').evaluateAll((inputs) => inputs.map((i) => i.value));
}

/** Presses Tab until `target` has focus (at most `max` times); every stop on the way must show a focus ring. */
async function tabTo(page, target, { max = 80 } = {}) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const focus = await focused(page);
    assert.ok(focus.visible, `focus ring visible on ${focus.what}`);
    if (await target.evaluate((el) => el === document.activeElement)) return;
  }
  throw new Error(`${target} not reached within ${max} Tab presses`);
}

/**
 * What has focus, and whether it shows a visible focus indicator: on
 * screen, an outline at least 2 px wide whose colour has a contrast of 3:1
 * or more (WCAG 1.4.11) with what lies just outside it, on three sides of
 * four at least. Focus inside a same-origin iframe (the widget preview) and
 * its shadow roots is followed to the element that has it.
 */
function focused(page) {
  return page.evaluate(() => {
    let el = document.activeElement;
    if (!el || el === document.body) return { what: 'body', visible: false, body: true };
    let root = document;
    let inside = '';
    for (;;) {
      const doc = el.tagName === 'IFRAME' ? el.contentDocument : null;
      if (doc && doc.activeElement && doc.activeElement !== doc.body) {
        inside = `in iframe "${el.title}": `;
        [root, el] = [doc, doc.activeElement];
      } else if (el.shadowRoot && el.shadowRoot.activeElement) {
        [root, el] = [el.shadowRoot, el.shadowRoot.activeElement];
      } else break;
    }
    const view = el.ownerDocument.defaultView;
    const name = el.getAttribute('aria-label') || el.textContent.trim().slice(0, 30) || el.name || el.id;
    const what = `${inside}${el.tagName.toLowerCase()} "${name}"`;
    const s = view.getComputedStyle(el);
    const box = el.getBoundingClientRect();
    const onScreen = box.width > 0 && box.height > 0 && box.bottom > 0 && box.top < view.innerHeight && box.right > 0 && box.left < view.innerWidth;
    const width = parseFloat(s.outlineWidth);
    if (s.outlineStyle === 'none' || width < 2 || !onScreen) return { what, visible: false, body: false };
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const luminance = ([r, g, b]) =>
      [r, g, b].map((v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)).reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
    // What is painted where the ring is, at the middle of each side: the
    // element's own shadow when it spreads past the ring (a ring drawn
    // between the element and its shadow), else the first opaque background
    // under a point just outside the ring. A side may touch a neighbour
    // (buttons in a row); three of four must contrast.
    const out = parseFloat(s.outlineOffset) + width + 1;
    const shadow = /^(rgba?\([^)]*\)) 0px 0px 0px ([\d.]+)px$/.exec(s.boxShadow);
    const halo = shadow && parseFloat(shadow[2]) >= out ? shadow[1] : null;
    const [cx, cy] = [box.left + box.width / 2, box.top + box.height / 2];
    const sides = [[box.left - out, cy], [box.right + out, cy], [cx, box.top - out], [cx, box.bottom + out]];
    const ring = luminance(rgb(s.outlineColor));
    const seen = sides.map(([x, y]) => {
      const under = root.elementsFromPoint(x, y).filter((e) => e !== el && !el.contains(e));
      const behind = halo || under.map((e) => view.getComputedStyle(e).backgroundColor).find((c) => rgb(c)[3] !== 0) || 'rgb(255, 255, 255)';
      const [a, b] = [ring, luminance(rgb(behind))].sort((p, q) => q - p);
      return { behind, contrast: (a + 0.05) / (b + 0.05) };
    });
    const good = seen.filter((side) => side.contrast >= 3).length;
    const worst = seen.reduce((w, side) => (side.contrast < w.contrast ? side : w));
    return { what: `${what} (ring ${s.outlineColor}, ${good}/4 sides at 3:1, worst on ${worst.behind})`, visible: good >= 3, body: false };
  });
}

/**
 * Tabs on from the current focus to the end of the page (focus leaves the
 * document or wraps to the skip link): every stop shows a focus ring.
 * Returns how many stops there were.
 */
async function tabToEnd(page, { max = 150 } = {}) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const focus = await focused(page);
    if (focus.body || /^a "(Skip to content|Aller au contenu)"/.test(focus.what)) return i;
    assert.ok(focus.visible, `focus ring visible on ${focus.what}`);
  }
  throw new Error(`more than ${max} Tab stops`);
}

/** axe-core on the whole console page: no violation of any impact. */
async function consoleAxe(page, screen) {
  await axe(page, screen, { include: null, impacts: null });
}

/** The visitor's widget position: "next in the queue" is 1, "number N" is N. */
function positionOf(statusText) {
  if (/next in the queue/.test(statusText)) return 1;
  const m = /number (\d+) in the queue/.exec(statusText);
  return m ? Number(m[1]) : null;
}

/** A host page on PAGES whose head is exactly `snippet`. */
function pageWith(snippet, title = 'Boiler shop') {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>
${snippet}
</head><body><h1>${title}</h1><p>We fix boilers.</p></body></html>`;
}

/** Opens the embedding page as a new visitor `name` (e-mail: this run's) and logs in; returns the widget's locators. */
async function visit(name) {
  assert.ok(state.snippet, 'needs the embed code of the channel the first test created');
  const visitor = await openPage(browser, { pages: { '/__test/index.html': pageWith(state.snippet) } });
  const w = await login(visitor.page, name, { email: email(name) });
  await w.host.locator('.options button').first().waitFor();
  return { ...visitor, w };
}

async function download(page, trigger) {
  const [file] = await Promise.all([page.waitForEvent('download'), trigger()]);
  return { name: file.suggestedFilename(), text: fs.readFileSync(await file.path(), 'utf8') };
}

/** RFC 4180 CSV into rows of strings. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted && c === '"' && text[i + 1] === '"') {
      cell += '"';
      i++;
    } else if (c === '"') {
      quoted = !quoted;
    } else if (quoted || (c !== ',' && c !== '\n' && c !== '\r')) {
      cell += c;
    } else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n') {
      rows.push([...row, cell]);
      row = [];
      cell = '';
    }
  }
  if (cell || row.length) rows.push([...row, cell]);
  return rows;
}

test('log in with the keyboard only; a wrong password says so', async () => {
  const { context, page, errors } = await consoleContext();
  await page.goto(BASE + '/admin/live');
  await page.waitForURL(`${BASE}/admin/login`);
  const username = page.getByRole('textbox', { name: 'User name', exact: true });
  const password = page.getByLabel('Password', { exact: true });
  await tabTo(page, username);
  await page.keyboard.type(USER);
  await page.keyboard.press('Tab');
  assert.equal(await password.evaluate((el) => el === document.activeElement), true, 'Tab goes from user name to password');
  await page.keyboard.type('not the password');
  await page.keyboard.press('Enter');
  const error = page.getByRole('alert');
  await error.filter({ hasText: 'Wrong user name or password.' }).waitFor();
  assert.equal(await username.inputValue(), USER, 'the user name is kept');
  assert.equal(await password.inputValue(), '', 'the password is not');
  await shot(page, 'console-02-login-refused');

  await tabTo(page, password);
  await page.keyboard.type(PASSWORD);
  await Promise.all([page.waitForURL(`${BASE}/admin/live`), page.keyboard.press('Enter')]);
  await page.getByRole('heading', { level: 1, name: 'Live' }).waitFor();
  assert.match(await page.locator('header').innerText(), new RegExp(escape(USER)), 'the header names who is logged in');
  assert.deepEqual(errors, []);
  await context.close();
});

test('create a chatbot channel with two options, reorder them, embed its code: a visitor sees them in that order', async () => {
  const page = await go('/admin/channels');
  await tabTo(page, link(page, 'New channel'));
  await Promise.all([page.waitForURL(`${BASE}/admin/channels/new`), page.keyboard.press('Enter')]);
  await page.getByLabel('Key', { exact: false }).first().fill(KEY);
  await page.getByLabel('Company name shown in the widget').fill('Boiler Shop');
  await page.getByLabel('Mode').selectOption('chatbot');
  for (const option of [SALES, REPAIR]) {
    await btn(page, 'Add an option').click();
    const row = page.locator('#options > li').last();
    assert.equal(await row.locator('[name=opt-id]').evaluate((el) => el === document.activeElement), true, 'the new option’s first field has focus');
    await row.getByLabel('Id').fill(option.id);
    await row.getByLabel('Label').fill(option.label);
    await row.getByLabel('Welcome message').fill(option.welcome);
    await row.getByLabel('Queue').selectOption(option.queue);
  }
  assert.deepEqual(await optionIds(page), ['sales', 'repair']);
  // Reorder with the keyboard: "Move up" on the second option, then the focus stays on it.
  const moveUp = page.locator('#options > li').nth(1).getByRole('button', { name: 'Move up', exact: true });
  await moveUp.focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('#options > li [name=opt-id]').value === 'repair');
  assert.deepEqual(await optionIds(page), ['repair', 'sales']);
  const movedUp = page.locator('#options > li').first().getByRole('button', { name: 'Move up', exact: true });
  assert.equal(await movedUp.evaluate((el) => el === document.activeElement), true, 'focus stays on the moved option’s button');
  // "Move down" on the first one and back up again: the buttons work both ways.
  await page.locator('#options > li').first().getByRole('button', { name: 'Move down', exact: true }).click();
  assert.deepEqual(await optionIds(page), ['sales', 'repair']);
  await page.locator('#options > li').nth(1).getByRole('button', { name: 'Move up', exact: true }).click();
  assert.deepEqual(await optionIds(page), ['repair', 'sales']);
  // A third option, removed again.
  await btn(page, 'Add an option').click();
  await page.locator('#options > li').nth(2).getByRole('button', { name: 'Remove', exact: true }).click();
  assert.equal(await page.locator('#options > li').count(), 2);

  await page.getByLabel('Allowed origins', { exact: false }).fill(PAGES);
  await shot(page, 'console-04-channel-new');
  await Promise.all([page.waitForURL(`${BASE}/admin/channels/${KEY}`), btn(page, 'Save').click()]);
  await editorLoaded(page, 2);
  assert.deepEqual(await optionIds(page), ['repair', 'sales'], 'the saved order comes back from the API');
  const saved = await apiChannel(KEY);
  assert.equal(saved.mode, 'chatbot');
  assert.deepEqual(saved.allowed_origins, [PAGES]);
  assert.deepEqual(saved.options.map((o) => o.label), [REPAIR.label, SALES.label]);

  // The embed code: the Copy button puts it on the clipboard (or, where the
  // clipboard is unavailable, selects it for Ctrl+C).
  const code = page.locator('#embed-code');
  const shown = await code.textContent();
  assert.equal(shown, `<script async src="${BASE}/widget.js" data-key="${KEY}"></script>`);
  await admin.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE }).catch(() => {});
  await btn(page, 'Copy').click();
  const said = page.locator('.copied');
  await said.filter({ hasText: /Copied\.|Selected: press Ctrl\+C to copy\./ }).waitFor();
  const copied =
    (await said.innerText()) === 'Copied.'
      ? await page.evaluate(() => navigator.clipboard.readText())
      : await page.evaluate(() => getSelection().toString());
  assert.equal(copied, shown, 'what Copy gives is the code shown');
  state.snippet = copied;
  await page.locator('#embed-title').scrollIntoViewIfNeeded();
  await shot(page, 'console-05-channel-embed');

  await go('/admin/channels');
  const row = page.locator('tbody tr', { hasText: KEY });
  assert.match(await row.innerText(), /Boiler Shop[\s\S]*Chatbot[\s\S]*Enabled[\s\S]*Console/);
  await shot(page, 'console-03-channels');

  // A page with exactly that snippet, on the allowed origin: the options, in the new order, without a restart.
  const { context, page: visitor, w, errors } = await visit('Ivy Chen');
  const labels = await w.host.locator('.options button').allInnerTexts();
  assert.deepEqual(labels.map((l) => l.trim()), [REPAIR.label, SALES.label]);
  await shot(visitor, 'console-06-embedded-widget');
  assert.deepEqual(errors, []);
  await endConversation(visitor, KEY);
  await context.close();
  assert.deepEqual(admin.errors, []);
});

test('edit a welcome text: the next visitor who picks that option reads the new one', async () => {
  assert.ok(state.snippet, 'needs the channel the first test created');
  const page = await go(`/admin/channels/${KEY}`);
  await editorLoaded(page, 2);
  const welcome = 'Hello! Our boiler expert Alice will be with you in a minute.';
  const sales = page.locator('#options > li').nth(1);
  assert.equal(await sales.getByLabel('Id').inputValue(), SALES.id);
  await sales.getByLabel('Welcome message').fill(welcome);
  await btn(page, 'Save').click();
  await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
  assert.equal((await apiChannel(KEY)).options[1].welcome, welcome);

  const { context, page: visitor, w } = await visit('Sam Roux');
  await w.host.locator('.options button', { hasText: SALES.label }).click();
  await w.host.locator('li.msg.system', { hasText: welcome }).waitFor();
  await endConversation(visitor, KEY);
  await context.close();
});

test('the preview beside the editor shows the draft in the real widget as it is typed, and never calls the visitor API', async () => {
  assert.ok(state.snippet, 'needs the channel the first test created');
  const saved = await apiChannel(KEY);
  // A page of its own, to hear every request its frames make.
  const page = await watchedPage(admin.context, admin.errors);
  const visitorCalls = [];
  page.on('request', (r) => {
    const { pathname } = new URL(r.url());
    if (/^\/api\/v1\/(channels|conversations)(\/|$)/.test(pathname)) visitorCalls.push(`${r.method()} ${pathname}`);
  });
  page.on('websocket', (ws) => visitorCalls.push(`WebSocket ${ws.url()}`));
  await go(`/admin/channels/${KEY}`, page);
  await editorLoaded(page, 2);
  const frame = page.frameLocator('iframe[title="Widget preview"]');
  const widget = frame.locator('frontdesk-widget');
  const inFrame = (role, name) => frame.getByRole(role, { name, exact: true });
  const title = widget.locator('h2.title');

  // The launcher and the login screen, as a visitor of the site sees them.
  await title.filter({ hasText: /^Boiler Shop$/ }).waitFor();
  await inFrame('button', 'Close chat').waitFor();
  await inFrame('textbox', 'Name').waitFor();
  await page.getByLabel('Company name shown in the widget').fill('Boiler Shop & Sons');
  await title.filter({ hasText: /^Boiler Shop & Sons$/ }).waitFor();

  // The preview chat starts in the widget itself: the chatbot's options, then
  // a new one as soon as it has a label, without saving.
  await inFrame('textbox', 'Name').fill('Pat Preview');
  await inFrame('textbox', 'Email').fill('pat@example.com');
  await inFrame('button', 'Start chat').click();
  const options = widget.locator('.options button');
  await options.nth(1).waitFor();
  assert.deepEqual((await options.allInnerTexts()).map((l) => l.trim()), [REPAIR.label, SALES.label]);
  await btn(page, 'Add an option').click();
  const row = page.locator('#options > li').last();
  await row.getByLabel('Id').fill('service');
  await row.getByLabel('Label').fill('Book a service');
  await options.filter({ hasText: 'Book a service' }).waitFor();
  assert.equal(await options.count(), 3);

  // Its welcome text as it is typed: picking the option shows it, and the
  // shown message follows the next edit.
  await row.getByLabel('Welcome message').fill('We book you a visit.');
  await options.filter({ hasText: 'Book a service' }).click();
  const welcome = widget.locator('li.msg.system');
  await welcome.filter({ hasText: 'We book you a visit.' }).waitFor();
  assert.match(await welcome.locator('.meta').innerText(), /^Boiler Shop & Sons/, 'from the company, as the draft names it');
  await row.getByLabel('Welcome message').fill('We book you a visit this week.');
  await welcome.filter({ hasText: 'We book you a visit this week.' }).waitFor();
  assert.equal(await welcome.count(), 1, 'the edited text replaces the shown one');
  await widget.locator('p.status[role=status]').filter({ hasText: /next in the queue/ }).waitFor();

  // What would send is inert: the text stays, the red band says why.
  const composer = inFrame('textbox', 'Message');
  await composer.fill('Is anyone there?');
  await composer.press('Enter');
  await widget.locator('.band').filter({ hasText: 'This is a preview: nothing is sent.' }).waitFor();
  assert.equal(await composer.inputValue(), 'Is anyone there?');
  await shot(page, 'console-06b-channel-preview');
  await consoleAxe(page, 'channel editor with its preview chat');

  // Out of hours, as the draft's hours say (a holiday today and tomorrow):
  // the out-of-hours screen, with the draft's text and the next opening.
  const day = (n) => new Date(Date.now() + n * 86400000).toISOString().slice(0, 10);
  await page.getByLabel('Out-of-hours text', { exact: false }).fill('We are away. Live chat is back {next_open}.');
  await page.getByLabel('Holidays', { exact: false }).fill(`${day(0)}..${day(1)} Maintenance`);
  await page.locator('#hours-now').filter({ hasText: /Next opening/ }).waitFor();
  const closedTitle = widget.getByRole('heading', { name: 'We are closed right now', exact: true });
  await closedTitle.waitFor();
  const reopens = await frame.locator('html').evaluate(
    (el, iso) => new Intl.DateTimeFormat('en', { weekday: 'long' }).format(new Date(iso)),
    `${day(2)}T00:00:00Z`,
  );
  const closedText = await widget.locator('p', { hasText: 'We are away.' }).innerText();
  assert.match(closedText, new RegExp(`^We are away\\. Live chat is back ${reopens}.*\\.$`), 'next_open filled in');
  await shot(page, 'console-06c-channel-preview-closed');
  await consoleAxe(page, 'channel editor with its out-of-hours preview');

  // The admin's choice beats the hours: open; and in French, a French page's visitor's.
  await page.getByRole('radio', { name: 'Open', exact: true }).check();
  await inFrame('button', 'Start chat').waitFor();
  await page.getByLabel("Language of the visitor's page").selectOption('fr');
  await inFrame('button', 'Démarrer le chat').waitFor();
  await page.getByRole('radio', { name: 'Closed', exact: true }).check();
  await widget.getByRole('heading', { name: 'Nous sommes fermés pour le moment', exact: true }).waitFor();
  await page.getByRole('radio', { name: 'As the business hours say now', exact: true }).check();
  await page.getByLabel('Holidays', { exact: false }).fill('');
  await inFrame('button', 'Démarrer le chat').waitFor();

  // Nothing was saved, and nothing reached the visitor API.
  await page.reload();
  await editorLoaded(page, 2);
  assert.deepEqual(await apiChannel(KEY), saved, 'the draft stays a draft');
  assert.deepEqual(visitorCalls, [], 'the preview made no visitor API request and opened no WebSocket');
  await page.close();
  assert.deepEqual(admin.errors, []);
});

test('a refused field shows its error next to it and nothing is saved', async () => {
  assert.ok(state.snippet, 'needs the channel the first test created');
  const page = await go(`/admin/channels/${KEY}`);
  await editorLoaded(page, 2);
  const before = await apiChannel(KEY);
  const origins = page.getByLabel('Allowed origins', { exact: false });
  const name = page.getByLabel('Company name shown in the widget');
  await name.fill('Renamed Shop');
  await origins.fill(`${PAGES}\n${PAGES}/shop`);
  await btn(page, 'Save').click();
  await origins.and(page.locator('[aria-invalid=true]')).waitFor();
  const error = await origins.evaluate((el) => {
    const note = document.getElementById(el.getAttribute('aria-describedby'));
    return { text: note?.textContent, next: el.nextElementSibling === note, focused: el === document.activeElement };
  });
  assert.match(error.text, new RegExp(`${escape(`${PAGES}/shop`)}.*without a path`), 'the message names the value and the rule');
  assert.ok(error.next, 'the message sits right after the field');
  assert.ok(error.focused, 'focus moves to the first field at fault');
  assert.match(await page.locator('form .status').innerText(), /./, 'the form says it was not saved');
  assert.equal(await page.locator('[aria-invalid=true]').count(), 1, 'only the field at fault is marked');
  await shot(page, 'console-07-channel-refused');
  await consoleAxe(page, 'channel with a refused field');

  const after = await apiChannel(KEY);
  assert.equal(after.name, before.name, 'the other change of the same save is not saved either');
  assert.deepEqual(after.allowed_origins, before.allowed_origins);
  await page.reload();
  await editorLoaded(page, 2);
  assert.equal(await name.inputValue(), before.name);
  assert.equal(await origins.inputValue(), PAGES);

  // A new channel with the key of this one: refused at the key, this one kept.
  await go('/admin/channels/new');
  const key = page.getByLabel('Key', { exact: false }).first();
  await key.fill(KEY);
  await page.getByLabel('Company name shown in the widget').fill('Impostor');
  await btn(page, 'Save').click();
  await key.and(page.locator('[aria-invalid=true]')).waitFor();
  assert.match(await key.evaluate((el) => document.getElementById(el.getAttribute('aria-describedby')).textContent), /already in use/);
  assert.equal(page.url(), `${BASE}/admin/channels/new`, 'still on the new channel form');
  assert.equal((await apiChannel(KEY)).name, before.name);
  // The same for an agent whose extension is taken.
  await go('/admin/agents/new');
  const extension = page.getByLabel('Extension', { exact: true });
  await extension.fill('101');
  await page.getByLabel('Name shown to visitors').fill('Impostor');
  await btn(page, 'Save').click();
  await extension.and(page.locator('[aria-invalid=true]')).waitFor();
  assert.match(await extension.evaluate((el) => document.getElementById(el.getAttribute('aria-describedby')).textContent), /101 is already in use/);

  // Putting it right clears the marks.
  await go(`/admin/channels/${KEY}`);
  await editorLoaded(page, 2);
  await origins.fill(`${PAGES}/shop`);
  await btn(page, 'Save').click();
  await origins.and(page.locator('[aria-invalid=true]')).waitFor();
  await origins.fill(PAGES);
  await btn(page, 'Save').click();
  await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
  assert.equal(await page.locator('[aria-invalid], .field-error').count(), 0, 'no error left once saved');
});

test('live view: the waiting visitor with its position, then the agent taking the chat, without a reload', async () => {
  assert.ok(state.snippet, 'needs the channel the first test created');
  const page = await go('/admin/live');
  await page.getByRole('status').filter({ hasText: /^Updated/ }).waitFor();
  await page.evaluate(() => (window.__sameDocument = true));
  const alice = page.locator('#agents tr[data-agent="101"]');
  // The agent of the other test files has logged out: nobody answers yet.
  await alice.locator('td').nth(2).filter({ hasText: /^offline$/ }).waitFor({ timeout: 30000 });

  const name = 'Lena Moreau';
  const address = email(name);
  const v = await visit(name);
  const { id } = (await stored(v.page, KEY)).conv;
  await v.w.host.locator('.options button', { hasText: REPAIR.label }).click();
  await v.w.status.filter({ hasText: /in the queue/ }).waitFor();
  const position = positionOf(await v.w.status.innerText());
  assert.ok(position >= 1, 'the widget tells its position');
  const waiting = page.locator(`#waiting tr[data-conversation="${id}"]`);
  await waiting.filter({ hasText: name }).waitFor();
  // The same position as the visitor is told (the queue's dispatch sets it
  // just after the chat joins the queue: the next snapshot has it).
  await waiting.locator('td').nth(3).filter({ hasText: new RegExp(`^${position}$`) }).waitFor();
  const cells = (await waiting.locator('td').allInnerTexts()).map((c) => c.trim());
  assert.equal(cells[1], KEY, 'channel');
  assert.equal(cells[2], REPAIR.queue, 'queue');
  assert.match(cells[4], /^\d+ min \d\d s$/, 'waiting time');
  await shot(page, 'console-08-live-waiting');
  await consoleAxe(page, 'live view with a waiting visitor');

  // The real XMPP agent logs in, gets the offer and answers: the chat moves under the agent.
  agent = await startAgent();
  const offer = await agent.nextOffer({ match: address });
  await agent.reply(offer.conversationId, `Hi ${name}, Alice here.`);
  await v.w.messages('Alice here').waitFor();
  await waiting.waitFor({ state: 'detached' });
  await alice.filter({ hasText: name }).waitFor();
  const agentCells = (await alice.locator('td').allInnerTexts()).map((c) => c.trim());
  assert.equal(agentCells[0], 'Alice Martin');
  assert.match(agentCells[2], /^(available|busy)$/);
  assert.match(agentCells[3], new RegExp(escape(name)));
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload happened');
  await shot(page, 'console-09-live-agent');

  // A few words both ways for the transcript, then the visitor ends the chat.
  await v.w.message.fill('My boiler makes a noise.');
  await v.page.keyboard.press('Enter');
  await agent.nextMessage(offer.conversationId, { match: 'noise' });
  await agent.reply(offer.conversationId, 'A technician comes tomorrow.');
  await v.w.messages('technician comes').waitFor();
  state.chat = { visitor: name, email: address, id };
  await endConversation(v.page, KEY);
  await alice.filter({ hasText: name }).waitFor({ state: 'detached' });
  assert.deepEqual(v.errors, []);
  await v.context.close();
});

test('the transcript is listed, opens, and exports as JSON and CSV', async () => {
  assert.ok(state.chat, 'needs the chat of the live view test');
  const { visitor, email: address, id } = state.chat;
  const page = await go('/admin/transcripts');
  const search = page.getByLabel('Visitor name or e-mail');
  await tabTo(page, search);
  await page.keyboard.type(address);
  await Promise.all([page.waitForURL(/\/admin\/transcripts\?/), page.keyboard.press('Enter')]);
  const row = page.locator('tbody tr', { hasText: visitor });
  await row.waitFor();
  assert.equal(await page.locator('tbody tr').count(), 1, 'the search finds that chat only');
  assert.match(await row.innerText(), new RegExp(`${escape(address)}[\\s\\S]*${KEY}[\\s\\S]*600[\\s\\S]*Alice Martin \\(101\\)[\\s\\S]*ended`));

  // The export buttons: the listed chats, as files.
  const json = await download(page, () => btn(page, 'Export JSON').click());
  assert.equal(json.name, 'transcripts.json');
  const exported = JSON.parse(json.text);
  assert.deepEqual(exported.map((t) => t.id), [id]);
  const bodies = exported[0].events.filter((e) => e.message).map((e) => e.message.body);
  for (const said of ['My boiler makes a noise.', 'A technician comes tomorrow.']) assert.ok(bodies.includes(said), `JSON has "${said}"`);
  assert.equal(exported[0].visitor_email, address);
  const csv = await download(page, () => btn(page, 'Export CSV').click());
  assert.equal(csv.name, 'transcripts.csv');
  const [header, ...lines] = parseCsv(csv.text);
  assert.deepEqual(header.slice(0, 4), ['conversation_id', 'channel', 'state', 'visitor_name']);
  const text = header.indexOf('text');
  assert.ok(lines.every((l) => l[0] === id && l[1] === KEY && l[3] === visitor), 'one conversation, its columns on each line');
  assert.ok(lines.some((l) => l[text] === 'My boiler makes a noise.' && l[header.indexOf('sender')] === 'visitor'));
  assert.ok(lines.some((l) => l[text] === 'A technician comes tomorrow.' && l[header.indexOf('author')] === 'Alice Martin'));

  // A selection: ticking two of this run's chats exports exactly those two.
  await go(`/admin/transcripts?q=${encodeURIComponent(RUN)}`);
  const boxes = page.getByRole('checkbox');
  await boxes.nth(1).waitFor();
  const picked = await Promise.all([0, 1].map((i) => boxes.nth(i).getAttribute('value')));
  for (const i of [0, 1]) await boxes.nth(i).check();
  const selection = JSON.parse((await download(page, () => btn(page, 'Export JSON').click())).text);
  assert.deepEqual(selection.map((t) => t.id).sort(), picked.sort());

  // The conversation itself.
  await go(`/admin/transcripts?q=${encodeURIComponent(address)}`);
  await Promise.all([page.waitForURL(`${BASE}/admin/transcripts/${id}`), link(page, visitor).click()]);
  await page.getByRole('heading', { level: 1, name: `Chat with ${visitor}` }).waitFor();
  const lines2 = page.locator('ol.transcript li');
  await lines2.filter({ hasText: 'My boiler makes a noise.' }).waitFor();
  await lines2.filter({ hasText: 'Alice Martin' }).filter({ hasText: 'A technician comes tomorrow.' }).waitFor();
  assert.ok((await page.locator('ol.transcript li.system').count()) >= 1, 'system events (queued, joined, ended) are shown');
  assert.match(await page.locator('dl.facts').innerText(), new RegExp(`${escape(address)}[\\s\\S]*${KEY}`));
  const one = JSON.parse((await download(page, () => link(page, 'Export JSON').click())).text);
  assert.deepEqual(one.map((t) => t.id), [id]);
  await shot(page, 'console-10-transcript');
  assert.deepEqual(admin.errors, []);
});

test('GDPR: find a visitor by e-mail, erase (confirmed) their conversations and files, audited', async () => {
  assert.ok(state.snippet, 'needs the channel the first test created');
  const address = email('Noah Petit');
  const v = await visit('Noah Petit');
  await v.w.host.locator('.options button', { hasText: SALES.label }).click();
  await v.w.message.waitFor();
  const filesBefore = storedFiles();
  const [chooser] = await Promise.all([
    v.page.waitForEvent('filechooser'),
    v.page.getByRole('button', { name: 'Attach file', exact: true }).click(),
  ]);
  await chooser.setFiles([{ name: 'invoice.txt', mimeType: 'text/plain', buffer: Buffer.from(`invoice ${RUN}`) }]);
  await v.w.send.click();
  await v.w.messages('invoice.txt').getByRole('button', { name: 'Download', exact: true }).waitFor();
  const { conv } = await stored(v.page, KEY);
  const messages = await (await fetch(`${BASE}/api/v1/conversations/${conv.id}/messages`, { headers: { Authorization: 'Bearer ' + conv.token } })).json();
  const fileId = messages.messages.find((m) => m.attachment).attachment.id;
  const visitorFile = `${BASE}/api/v1/conversations/${conv.id}/files/${fileId}`;
  assert.equal((await fetch(visitorFile, { headers: { Authorization: 'Bearer ' + conv.token } })).status, 200);
  const newFiles = filesBefore && storedFiles().filter((f) => !filesBefore.includes(f));
  if (newFiles) assert.equal(newFiles.length, 1, 'the upload is one file in the file store');
  await endConversation(v.page, KEY);
  await v.context.close();

  const page = await go('/admin/visitors');
  await tabTo(page, page.getByLabel('E-mail address'));
  await page.keyboard.type(address);
  await Promise.all([page.waitForURL(/\/admin\/visitors\?email=/), page.keyboard.press('Enter')]);
  await page.getByRole('heading', { level: 2, name: `1 conversations for ${address}` }).waitFor();
  const exported = await download(page, () => link(page, 'Export as JSON').click());
  const data = JSON.parse(exported.text);
  assert.deepEqual(data.conversations.map((c) => c.id), [conv.id], 'the export holds that visitor’s conversation');
  await shot(page, 'console-11-visitor-data');

  const erase = btn(page, 'Erase all of it');
  await tabTo(page, erase);
  let asked = null;
  page.once('dialog', (dialog) => {
    asked = dialog.message();
    dialog.accept();
  });
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: 'Erased 1 conversations and 1 files.' }).waitFor();
  assert.match(asked, new RegExp(`Erase every conversation and file of ${escape(address)}\\?`));

  const request = admin.context.request;
  assert.equal((await request.get(`${BASE}/admin/transcripts/${conv.id}`)).status(), 404, 'the transcript page is gone');
  assert.equal((await request.get(`${BASE}/api/v1/admin/conversations/${conv.id}`)).status(), 404);
  assert.equal((await request.get(`${BASE}/api/v1/admin/files/${fileId}`)).status(), 404, 'the file is gone for the console');
  assert.equal((await fetch(visitorFile, { headers: { Authorization: 'Bearer ' + conv.token } })).status, 404, 'and for the visitor');
  if (newFiles) assert.equal(fs.existsSync(newFiles[0]), false, `the file's bytes are deleted (${newFiles[0]})`);
  await go(`/admin/visitors?email=${encodeURIComponent(address)}`);
  await page.getByRole('heading', { level: 2, name: `0 conversations for ${address}` }).waitFor();

  await go('/admin/audit');
  const entry = page.locator('tbody tr', { hasText: 'visitor.erase' }).first();
  await entry.waitFor();
  assert.match(await entry.innerText(), new RegExp(`${escape(USER)}[\\s\\S]*visitor\\.erase[\\s\\S]*visitor sha256:[0-9a-f]{16}`));
  assert.ok(!(await page.locator('main').innerText()).includes(address), 'the audit log keeps no e-mail address');
  assert.ok(await page.locator('tbody tr', { hasText: `channel.` }).filter({ hasText: KEY }).count(), 'channel changes are audited too');
  await shot(page, 'console-12-audit');
  assert.deepEqual(admin.errors, []);
});

test('API tokens: create one, see its secret once with a Copy button and a warning, listed without it, then revoke it', async () => {
  const page = await go('/admin/tokens');
  const name = `crm-${RUN}`;
  await tabTo(page, page.getByLabel('Name (what uses it, e.g. CRM sync)'));
  await page.keyboard.type(name);
  await page.getByLabel('Role', { exact: true }).selectOption('supervisor');
  await tabTo(page, btn(page, 'Create token'));
  await page.keyboard.press('Enter');
  const box = page.locator('#token-secret-box');
  await box.waitFor();
  const secret = await page.locator('#token-secret').textContent();
  assert.match(secret, /^fdt_[0-9a-f]{64}$/);
  assert.match(await box.innerText(), /shown only this once and cannot be shown again/, 'a warning says it is shown once');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'token-secret-title', 'focus moves to the new secret');
  await page.getByRole('status').filter({ hasText: `Token ${name} created.` }).waitFor();
  await admin.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE }).catch(() => {});
  await box.getByRole('button', { name: 'Copy', exact: true }).click();
  const said = box.locator('.copied');
  await said.filter({ hasText: /Copied\.|Selected: press Ctrl\+C to copy\./ }).waitFor();
  const copied =
    (await said.innerText()) === 'Copied.'
      ? await page.evaluate(() => navigator.clipboard.readText())
      : await page.evaluate(() => getSelection().toString());
  assert.equal(copied, secret, 'Copy gives the secret shown');
  const bearer = (token) => fetch(`${BASE}/api/v1/admin/channels`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal((await bearer(secret)).status, 200, 'the token works');
  const row = page.locator('#tokens tbody tr', { hasText: name });
  assert.match(await row.innerText(), new RegExp(`Supervisor[\\s\\S]*${escape(USER)}`));
  await shot(page, 'console-40-token-created');
  await consoleAxe(page, 'token created');

  // Shown once: the page again lists it, without its secret.
  await page.reload();
  await row.waitFor();
  assert.ok(!(await page.content()).includes(secret.slice(4)), 'the secret is on no page any more');
  assert.equal(await box.isVisible(), false);
  const asked = await confirmed(page, row.getByRole('button', { name: `Revoke ${name}`, exact: true }));
  await page.getByRole('status').filter({ hasText: `Token ${name} revoked.` }).waitFor();
  assert.match(asked(), new RegExp(`^Revoke the token ${escape(name)}\\? Programs using it lose access at once\\.$`));
  await row.waitFor({ state: 'detached' });
  assert.equal((await bearer(secret)).status, 401, 'a revoked token opens nothing');
  assert.deepEqual(admin.errors, []);
});

test('users: a new supervisor logs in and can change nothing, is made an admin, changes their password (ending their other session), and is deleted', async () => {
  const page = await go('/admin/users');
  const name = `sup-${RUN}`;
  const first = `first pass phrase ${RUN}`;
  await tabTo(page, page.getByLabel('User name', { exact: true }));
  await page.keyboard.type(name);
  const password = page.getByLabel('Password (at least 12 characters)');
  await password.fill('too short');
  await page.getByLabel('Role', { exact: true }).selectOption('supervisor');
  await btn(page, 'Create user').click();
  await password.and(page.locator('[aria-invalid=true]')).waitFor();
  assert.equal(await noteOf(password), 'password must be at least 12 characters');
  await password.fill(first);
  await btn(page, 'Create user').click();
  await page.locator('#users-status').filter({ hasText: `User ${name} created: they can log in now.` }).waitFor();
  const row = page.locator('#users tbody tr', { hasText: name });
  assert.match(await row.locator('td').nth(1).innerText(), /^Supervisor/);
  await shot(page, 'console-41-users');

  // They log in: nothing to change for a supervisor.
  const them = await consoleContext();
  await logIn(them.page, null, name, first);
  await go('/admin/users', them.page);
  await them.page.getByRole('note').filter({ hasText: 'Only admins add, change or delete users.' }).waitFor();
  assert.equal(await them.page.locator('#new-user, [data-delete-user], [data-change-role]').count(), 0, 'no form, no buttons');
  assert.equal(await link(them.page, 'API tokens').count(), 0);
  await go('/admin/queues/new', them.page);
  assert.equal(await btn(them.page, 'Save').count(), 0, 'no Save on a queue form');
  await consoleAxe(them.page, 'queue form of a supervisor');

  // Made an admin, their next page has the forms.
  await row.getByLabel(`Role of ${name}`).selectOption('admin');
  await row.getByRole('button', { name: `Change role ${name}`, exact: true }).click();
  await page.locator('#users-status').filter({ hasText: `The role of ${name} is now: Admin.` }).waitFor();
  await go('/admin/users', them.page);
  await them.page.locator('#new-user').waitFor();

  // A second session of theirs, then a password change in the first one.
  const other = await consoleContext();
  await logIn(other.page, null, name, first);
  const second = `second pass phrase ${RUN}`;
  const change = async (current, fresh, again) => {
    await go('/admin/password', them.page);
    await them.page.getByLabel('Current password').fill(current);
    await them.page.getByLabel('New password (at least 12 characters)').fill(fresh);
    await them.page.getByLabel('New password again').fill(again);
    await tabTo(them.page, btn(them.page, 'Change password'));
    await Promise.all([them.page.waitForURL(`${BASE}/admin/password`), them.page.keyboard.press('Enter')]);
  };
  await change('not my password at all', second, second);
  await them.page.getByRole('alert').filter({ hasText: 'Your password is not changed.' }).waitFor();
  const current = them.page.getByLabel('Current password');
  assert.equal(await current.getAttribute('aria-invalid'), 'true');
  assert.equal(await noteOf(current), 'this is not your current password');
  assert.equal(await current.evaluate((el) => el === document.activeElement), true, 'focus is on the field at fault');
  await consoleAxe(them.page, 'password refused');
  await change(first, second, `${second}!`);
  assert.equal(await noteOf(them.page.getByLabel('New password again')), 'the two new passwords differ');
  await change(first, second, second);
  await them.page.getByRole('status').filter({ hasText: 'Your password is changed. Your other sessions are logged out.' }).waitFor();
  await shot(them.page, 'console-42-password-changed');
  await go('/admin/users', them.page);
  await other.page.goto(`${BASE}/admin/users`);
  await other.page.waitForURL(`${BASE}/admin/login`);
  await loginRefused(other.page, name, first);
  await logIn(other.page, null, name, second);

  // Deleted: every session of theirs ends.
  await page.reload();
  const asked = await confirmed(page, row.getByRole('button', { name: `Delete ${name}`, exact: true }));
  await page.locator('#users-status').filter({ hasText: `Account ${name} deleted.` }).waitFor();
  assert.match(asked(), new RegExp(`^Delete the account ${escape(name)}\\?`));
  await row.waitFor({ state: 'detached' });
  for (const session of [them, other]) {
    await session.page.goto(`${BASE}/admin/live`);
    await session.page.waitForURL(`${BASE}/admin/login`);
    assert.deepEqual(session.errors, []);
    await session.context.close();
  }
  assert.deepEqual(admin.errors, []);
});

test('tenants: a super-admin lists and creates them and adds their admin; an admin has no such screen', async (t) => {
  if (!ROOT_USER) {
    t.skip('no super-admin (FRONTDESK_CONSOLE_ROOT_USER)');
    return;
  }
  assert.equal((await admin.context.request.get(`${BASE}/admin/tenants`)).status(), 403);
  assert.equal(await link(await go('/admin/live'), 'Tenants').count(), 0, 'no Tenants link for an admin');
  const root = await consoleContext();
  await logIn(root.page, null, ROOT_USER, ROOT_PASSWORD);
  const page = await go('/admin/tenants', root.page);
  await page.locator('tbody tr', { hasText: 'default' }).waitFor();
  const id = `t-${RUN}`;
  const idField = page.getByLabel('Id (lowercase letters, digits and -)');
  await tabTo(page, idField);
  await page.keyboard.type('Not Valid');
  await page.getByLabel('Name', { exact: true }).fill(`Tenant ${RUN}`);
  await btn(page, 'Create tenant').click();
  await idField.and(page.locator('[aria-invalid=true]')).waitFor();
  assert.equal(await noteOf(idField), "1 to 64 lowercase letters, digits or '-'");
  await idField.fill(id);
  await btn(page, 'Create tenant').click();
  await page.locator('#tenants-status').filter({ hasText: `Tenant ${id} created.` }).waitFor();
  const row = page.locator('tbody tr', { hasText: id });
  await row.waitFor();
  await shot(page, 'console-43-tenants');

  // Its users: none yet; the super-admin adds its admin.
  await Promise.all([page.waitForURL(`${BASE}/admin/users?tenant=${id}`), row.getByRole('link').click()]);
  await page.getByRole('cell', { name: 'No user yet.' }).waitFor();
  assert.equal(await page.getByLabel('Tenant', { exact: true }).inputValue(), id);
  await page.getByLabel('User name', { exact: true }).fill(`adm-${RUN}`);
  await page.getByLabel('Password (at least 12 characters)').fill(`admin pass phrase ${RUN}`);
  await btn(page, 'Create user').click();
  await page.locator('#users tbody tr', { hasText: `adm-${RUN}` }).waitFor();
  await screenCheck(root.context, root.errors, { path: '/admin/tenants', name: 'tenants', action: (p) => btn(p, 'Create tenant') }, 'console-44-tenants-keyboard');
  assert.deepEqual(root.errors, []);
  await root.context.close();
});

/** Every file under the gateway's file store, when FRONTDESK_DATA_DIR names its data directory. */
function storedFiles() {
  if (!DATA_DIR) return null;
  const out = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (!/\.(db|db-wal|db-shm|key)$/.test(e.name)) out.push(p);
    }
  };
  walk(DATA_DIR);
  return out;
}

/**
 * One screen, in a page of its own, as someone arriving at it: axe finds
 * nothing; Tab first reaches the skip link, which leads into the main
 * content; the keyboard reaches the main action; every Tab stop shows a
 * focus ring.
 */
async function screenCheck(context, errors, screen, shotName) {
  const page = await watchedPage(context, errors);
  await go(screen.path, page);
  if (screen.ready) await screen.ready(page);
  await consoleAxe(page, screen.name);
  await page.keyboard.press('Tab');
  const first = await focused(page);
  assert.ok(/^a "(Skip to content|Aller au contenu)"/.test(first.what), `${screen.name}: Tab first reaches the skip link, not ${first.what}`);
  assert.ok(first.visible, `${screen.name}: the skip link shows when focused`);
  if (screen.action) {
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    assert.ok(await page.evaluate(() => !!document.activeElement.closest('main')), `${screen.name}: after the skip link, Tab is in the main content`);
    const action = screen.action(page);
    if (!(await action.evaluate((el) => el === document.activeElement))) await tabTo(page, action);
  }
  await tabToEnd(page);
  await shot(page, shotName);
  await page.close();
}

test('every console screen: axe finds nothing, keyboard reaches its main action with a visible focus', async () => {
  assert.ok(state.chat, 'needs the chat of the live view test');
  const screens = [
    { path: '/admin/live', name: 'live', ready: (p) => p.getByRole('status').filter({ hasText: /^Updated/ }).waitFor() },
    { path: '/admin/channels', name: 'channels', action: (p) => link(p, 'New channel') },
    { path: '/admin/channels/new', name: 'channel-new', action: (p) => btn(p, 'Save') },
    { path: `/admin/channels/${KEY}`, name: 'channel', ready: (p) => editorLoaded(p, 2), action: (p) => btn(p, 'Copy') },
    {
      path: '/admin/channels/demo-bot',
      name: 'channel-provisioned',
      ready: (p) => p.waitForFunction(() => document.querySelector('#f-name').disabled && document.querySelector('#f-name').value),
      action: (p) => btn(p, 'Copy'),
    },
    { path: '/admin/queues', name: 'queues', action: (p) => link(p, 'New queue') },
    { path: '/admin/queues/600', name: 'queue-provisioned', ready: (p) => p.waitForFunction(() => document.querySelector('#f-name').value) },
    { path: '/admin/queues/new', name: 'queue-new', action: (p) => btn(p, 'Save') },
    { path: '/admin/agents/101', name: 'agent-provisioned', ready: (p) => p.waitForFunction(() => document.querySelector('#f-name').value) },
    { path: '/admin/agents/new', name: 'agent-new', action: (p) => btn(p, 'Save') },
    { path: `/admin/transcripts?q=${encodeURIComponent(RUN)}`, name: 'transcripts', action: (p) => btn(p, 'Export JSON') },
    { path: `/admin/transcripts/${state.chat.id}`, name: 'transcript', action: (p) => link(p, 'Export CSV') },
    { path: '/admin/follow-up', name: 'follow-up' },
    { path: `/admin/visitors?email=${encodeURIComponent(state.chat.email)}`, name: 'visitors', action: (p) => btn(p, 'Erase all of it') },
    { path: '/admin/audit', name: 'audit' },
    { path: '/admin/users', name: 'users', action: (p) => btn(p, 'Create user') },
    { path: '/admin/tokens', name: 'tokens', action: (p) => btn(p, 'Create token') },
    { path: '/admin/password', name: 'password', action: (p) => btn(p, 'Change password') },
  ];
  const { context, page, errors } = await consoleContext();
  await page.goto(BASE + '/admin/login');
  await consoleAxe(page, 'login');
  await tabTo(page, btn(page, 'Log in'));
  await shot(page, 'console-01-login');
  await logIn(page);
  await page.close();
  for (const [i, screen] of screens.entries()) {
    await screenCheck(context, errors, screen, `console-${String(i + 13).padStart(2, '0')}-${screen.name}`);
  }
  assert.deepEqual(errors, []);
  await context.close();
});

test('French: the console in French', async (t) => {
  const probe = await fetch(`${BASE}/admin/login?lang=fr`);
  if (!/<html lang="fr"/.test(await probe.text())) {
    t.skip('console French not built yet');
    return;
  }
  const { context, page, errors } = await consoleContext({ locale: 'fr-FR' });
  await page.goto(`${BASE}/admin/login?lang=fr`);
  await page.getByRole('heading', { level: 1, name: 'Connexion à Frontdesk' }).waitFor();
  await consoleAxe(page, 'French login');
  await logIn(page, 'fr');
  await page.goto(`${BASE}/admin/channels?lang=fr`);
  await page.getByRole('heading', { level: 1, name: 'Canaux' }).waitFor();
  assert.equal(await page.locator('html').getAttribute('lang'), 'fr');
  await consoleAxe(page, 'French channels');
  await shot(page, 'console-30-french-channels');
  assert.deepEqual(errors, []);
  await context.close();
});

test('French: the queue form, its refused fields, the business-hours check and the account screens', async () => {
  assert.ok(state.snippet, 'needs the channel the first test created');
  const { context, page, errors } = await consoleContext({ locale: 'fr-FR' });
  await logIn(page, 'fr');
  await go('/admin/queues/new', page);
  await page.getByRole('heading', { level: 1, name: 'Nouvelle file' }).waitFor();
  const labels = ['Poste', 'Nom', "Stratégie (comme dans queues.conf d'Asterisk)", "Membres, un par ligne : poste de l'agent, puis une pénalité facultative (101 2)",
    'Durée de sonnerie (secondes)', 'Chats simultanés par agent, au plus', 'Temps de clôture (secondes)', 'Attente maximale avant débordement (secondes ; vide : sans limite)'];
  for (const label of labels) await page.getByLabel(label, { exact: true }).waitFor();
  assert.match(await page.getByLabel("Stratégie (comme dans queues.conf d'Asterisk)").locator('option').first().innerText(), /^ringall : tous les agents libres/);
  const extension = `q-${RUN}`;
  await page.getByLabel('Poste', { exact: true }).fill(extension);
  await page.getByLabel('Nom', { exact: true }).fill('File de test');
  const ring = page.getByLabel('Durée de sonnerie (secondes)');
  await ring.fill('0');
  await btn(page, 'Enregistrer').click();
  await ring.and(page.locator('[aria-invalid=true]')).waitFor();
  assert.equal(await noteOf(ring), `file ${extension} : la durée de sonnerie est d'au moins 1 seconde`, 'the rule, in French, next to its field');
  assert.equal(await page.locator('form .status').innerText(), 'Non enregistré.');
  await ring.fill('15');
  const members = page.getByLabel("Membres, un par ligne : poste de l'agent, puis une pénalité facultative (101 2)");
  await members.fill('199');
  await btn(page, 'Enregistrer').click();
  await members.and(page.locator('[aria-invalid=true]')).waitFor();
  assert.equal(await noteOf(members), `file ${extension} : le membre 199 n'est pas un agent défini`);
  await shot(page, 'console-45-french-queue-refused');
  await consoleAxe(page, 'French queue form with a refused field');

  // The business hours, explained in French as they are typed.
  await go(`/admin/channels/${KEY}`, page);
  await editorLoaded(page, 2);
  await page.getByLabel('Fuseau horaire (IANA, p. ex. Europe/Paris)').fill('Europe/Paris');
  const open = page.getByLabel('Ouvert quand', { exact: false });
  await open.fill('09:00-18:00,mon-fri,*,*');
  const hours = page.locator('#hours-now');
  await hours.filter({ hasText: /\(Europe\/Paris\) : / }).waitFor();
  assert.match(await hours.innerText(), /^(Ouvert le .* la règle d'ouverture n° 1 « 09:00-18:00,mon-fri,\*,\* » s'applique|Fermé le .* en dehors des 1 règle\(s\) d'ouverture Prochaine ouverture : .*)$/);
  await open.fill('25:00-26:00,*,*,*');
  await hours.filter({ hasText: /n'est pas une condition horaire Asterisk/ }).waitFor();
  assert.match(await hours.innerText(), /^la règle d'ouverture « 25:00-26:00,\*,\*,\* » n'est pas une condition horaire Asterisk/);
  await shot(page, 'console-46-french-hours');

  // The account screens.
  for (const [p, heading] of [['/admin/users', 'Utilisateurs'], ['/admin/tokens', "Jetons d'API"], ['/admin/password', 'Changer de mot de passe']]) {
    await go(p, page);
    await page.getByRole('heading', { level: 1, name: heading }).waitFor();
    await consoleAxe(page, `French ${heading}`);
  }
  await page.getByLabel('Mot de passe actuel').waitFor();
  await page.getByLabel('Nouveau mot de passe (12 caractères au moins)').waitFor();
  await shot(page, 'console-47-french-password');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a channel that routes by time shows its routes, and the hours check names the route and where it goes', async () => {
  const key = `routed-${RUN}`;
  const page = await go('/admin/channels');
  const created = await createChannel(page, {
    key, name: 'Routed Shop', mode: 'live', allowed_origins: [PAGES],
    schedule: {
      timezone: 'Europe/Paris',
      routes: [{ when: '*,*,30,feb', to: 'closed' }, { when: '*,*,*,*', to: { queue: '600' } }],
      default: { closed: 'gone' },
    },
    closures: { gone: { text: 'Gone fishing.', alternatives: [] } },
  });
  assert.equal(created.status, 201, created.body);
  await go(`/admin/channels/${key}`, page);
  await editorLoaded(page);
  const routing = page.locator('#routing');
  await routing.waitFor();
  assert.deepEqual(await routeValues(page), [['*,*,30,feb', 'closed'], ['*,*,*,*', 'queue:600']]);
  assert.equal(await page.getByLabel('When no route holds, goes to').inputValue(), 'closure:gone');
  assert.match(await page.locator('#routing-note').innerText(), /routes by time: the open rules and holidays above do not apply/);
  assert.ok(await page.locator('[name="schedule.open"]').isDisabled(), 'open rules do not apply to a routing schedule');
  const hours = page.locator('#hours-now');
  await hours.filter({ hasText: /route #2/ }).waitFor();
  assert.match(await hours.innerText(), /^Open at .*\(Europe\/Paris\): route #2 `\*,\*,\*,\*` holds, so queue 600$/);
  // Saving another field keeps the routes.
  await page.getByLabel('Company name shown in the widget').fill('Routed Shop 2');
  await btn(page, 'Save').click();
  await page.locator('form .status').filter({ hasText: /^Saved/ }).waitFor();
  const saved = await apiChannel(key);
  assert.equal(saved.name, 'Routed Shop 2');
  assert.deepEqual(saved.schedule.routes[1].to, { queue: '600' });
  assert.deepEqual(saved.closures.gone.text, 'Gone fishing.');

  // Edit the routing in the console: a weekend closure, then a route to it
  // moved first; the hours check follows the draft before it is saved.
  await btn(page, 'Add a closure').click();
  const closure = page.locator('#closures > li').last();
  await closure.getByLabel('Name').fill('weekend');
  await closure.getByLabel('Text shown to visitors').fill('See you on Monday.');
  await btn(page, 'Add a route').click();
  const added = page.locator('#routes > li').last();
  assert.ok(await added.locator('textarea').evaluate((el) => el === document.activeElement), 'the new route has focus');
  await added.locator('textarea').fill('*,*,*,*');
  await added.getByLabel('Goes to').selectOption('closure:weekend');
  await added.getByRole('button', { name: 'Move up', exact: true }).click();
  await page.locator('#routes > li').nth(1).getByRole('button', { name: 'Move up', exact: true }).click();
  assert.deepEqual(await routeValues(page), [['*,*,*,*', 'closure:weekend'], ['*,*,30,feb', 'closed'], ['*,*,*,*', 'queue:600']]);
  await hours.filter({ hasText: /route #1/ }).waitFor();
  assert.match(await hours.innerText(), /so closed \(weekend\)$/);
  await btn(page, 'Save').click();
  await page.locator('form .status').filter({ hasText: /^Saved/ }).waitFor();
  const edited = await apiChannel(key);
  assert.deepEqual(edited.schedule.routes[0], { when: ['*,*,*,*'], to: { closed: 'weekend' } });
  assert.deepEqual(edited.schedule.default, { closed: 'gone' });
  assert.equal(edited.closures.weekend.text, 'See you on Monday.');
  // A route to a closure that does not exist is refused at its field.
  await closure.getByRole('button', { name: 'Remove', exact: true }).click();
  await btn(page, 'Save').click();
  await page.locator('form .status').filter({ hasText: /not saved|Not saved/i }).waitFor();
  const refusedTo = page.locator('#routes > li').first().getByLabel('Goes to');
  assert.equal(await refusedTo.getAttribute('aria-invalid'), 'true', 'the error is shown at the route that names the closure');
  assert.match(await page.locator('#routes > li').first().locator('.field-error').innerText(), /weekend/);
  await routing.scrollIntoViewIfNeeded();
  await shot(page, 'console-50-routing');
  await consoleAxe(page, 'channel that routes by time');
});

test('a PBX sync: its queue is listed as the PBX\'s and read-only, and a channel that follows a PBX entry point shows its routing', async (t) => {
  const sync = process.env.FRONTDESK_PBX_SYNC_CMD;
  if (!sync) return t.skip('FRONTDESK_PBX_SYNC_CMD is not set');
  const key = `pbx-${RUN}`;
  const page = await go('/admin/channels');
  const created = await createChannel(page, { key, name: 'PBX Shop', mode: 'live', queue: '600', allowed_origins: [PAGES] });
  assert.equal(created.status, 201, created.body);
  // The admin names the PBX entry point in the editor.
  await go(`/admin/channels/${key}`, page);
  await editorLoaded(page);
  await page.getByLabel('Follow the PBX routing of').fill('from-pstn,0123456789');
  await btn(page, 'Save').click();
  await page.locator('form .status').filter({ hasText: /^Saved/ }).waitFor();
  assert.equal((await apiChannel(key)).pbx_routing, 'from-pstn,0123456789');

  const out = execSync(sync, { shell: '/bin/sh', encoding: 'utf8' });
  assert.match(out, /^\+ queue 602 "602"$/m);
  assert.match(out, new RegExp(`^~ channel ${escape(key)} \\(routing of from-pstn,0123456789\\)`, 'm'));
  // The gateway follows within its directory poll.
  let routes = [];
  await until(async () => {
    routes = (await apiChannel(key)).schedule?.routes ?? [];
    return routes.length === 2;
  }, 'the channel to follow the PBX routing');
  assert.deepEqual(routes[0].to, { closed: 'tc-support-closed' });

  await go('/admin/queues', page);
  const row = page.locator('tr', { has: page.getByRole('link', { name: '602', exact: true }) });
  assert.match(await row.innerText(), /PBX$/);
  await link(page, '602').click();
  await page.getByRole('note').filter({ hasText: 'comes from the PBX' }).waitFor();
  assert.equal(await btn(page, 'Save').count(), 0, 'a PBX queue cannot be saved here');
  assert.ok(await page.getByLabel('Name', { exact: true }).isDisabled());

  await go(`/admin/channels/${key}`, page);
  await editorLoaded(page);
  assert.equal(await page.getByLabel('Follow the PBX routing of').inputValue(), 'from-pstn,0123456789');
  const routing = page.locator('#routing');
  await routing.waitFor();
  assert.deepEqual(await routeValues(page), [
    ['*,*,25,dec', 'closure:tc-support-closed'],
    ['09:00-12:30,mon-fri,*,*,Europe/Paris\n14:00-18:00,mon-fri,*,*,Europe/Paris', 'queue:601'],
  ]);
  assert.match(await page.locator('#routing-note').innerText(), /follow the PBX's entry point from-pstn,0123456789/);
  assert.ok(await page.locator('#routes [name=route-when]').first().isDisabled(), 'the sync owns these routes');
  assert.ok(await btn(page, 'Add a route').isDisabled());
  await routing.scrollIntoViewIfNeeded();
  await shot(page, 'console-51-pbx-routing');
  await consoleAxe(page, 'channel that follows the PBX');
});

test('the preview of a channel whose route closes it now shows that closure\'s own text', async () => {
  const key = `gone-${RUN}`;
  const page = await go('/admin/channels');
  const created = await createChannel(page, {
    key, name: 'Gone Shop', mode: 'live', queue: '600', allowed_origins: [PAGES],
    schedule: { routes: [{ when: '*,*,*,*', to: { closed: 'gone' } }], default: 'open' },
    closed: { text: 'Closed for the night.', alternatives: [] },
    closures: { gone: { text: 'Gone fishing.', alternatives: [] } },
  });
  assert.equal(created.status, 201, created.body);
  await go(`/admin/channels/${key}`, page);
  await editorLoaded(page);
  const widget = page.frameLocator('iframe[title="Widget preview"]').locator('frontdesk-widget');
  await widget.getByText('Gone fishing.').waitFor();
  // Previewing "Closed" by hand shows the channel's own closed text.
  await page.getByLabel('Closed', { exact: true }).check();
  await widget.getByText('Closed for the night.').waitFor();
});
