'use strict';
// W1–W4, H1–H5, L1, L2 without an agent: the snippet on a hostile host page,
// login warnings, the out-of-hours screen, keyboard use and French.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { BASE, PAGES, KEYS, launch, openPage, hostPage, ui, shot, axe, channelInfo } = require('./harness');

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('W1: /demo shows a blue round bubble bottom-right, isolated from the host page CSS', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  await page.goto(BASE + '/demo');
  const w = ui(page);
  await w.bubble.waitFor();
  const box = await w.bubble.boundingBox();
  assert.ok(box.x + box.width > 1100 - 60 && box.y + box.height > 760 - 60, `bubble at bottom-right, got ${JSON.stringify(box)}`);
  assert.ok(Math.abs(box.width - box.height) < 1, 'bubble is round (square box)');
  const bubbleStyle = await w.bubble.evaluate((b) => {
    const s = getComputedStyle(b);
    return { bg: s.backgroundColor, radius: s.borderRadius, padding: s.paddingTop };
  });
  assert.equal(bubbleStyle.bg, 'rgb(29, 78, 216)', 'bubble stays blue despite `button { background: lime !important }`');
  assert.equal(bubbleStyle.radius, '50%');
  assert.equal(bubbleStyle.padding, '0px', 'host `button { padding: 40px !important }` does not apply');
  await shot(page, '01-demo-bubble');

  await w.bubble.click();
  await w.name.waitFor();
  const startStyle = await w.start.evaluate((b) => {
    const s = getComputedStyle(b);
    return { font: s.fontFamily, bg: s.backgroundColor, color: s.color, pad: s.paddingTop };
  });
  assert.ok(!/comic/i.test(startStyle.font), `widget font is its own, got ${startStyle.font}`);
  assert.equal(startStyle.bg, 'rgb(29, 78, 216)');
  assert.equal(startStyle.color, 'rgb(255, 255, 255)');
  assert.notEqual(startStyle.pad, '40px');
  const panelVisible = await page.locator('frontdesk-widget section[role=dialog]').isVisible();
  assert.ok(panelVisible, 'host `[role=dialog] { display: none !important }` does not hide the panel');
  // ...and the widget does not restyle the host page.
  const hostButton = await page.locator('main button').first().evaluate((b) => getComputedStyle(b).backgroundColor);
  assert.equal(hostButton, 'rgb(0, 255, 0)', 'host page buttons keep their own (lime) style');
  await shot(page, '02-login');
  await axe(page, 'login');
  await context.close();
});

test('W1: async loader adds exactly one global and never delays the page', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Hold widget.js back until the page has finished loading: DOMContentLoaded
  // must not wait for it, and the widget must still mount afterwards.
  let release;
  const held = new Promise((r) => (release = r));
  await page.route(`${BASE}/widget.js`, async (route) => {
    await held;
    await route.continue();
  });
  await context.route(`${PAGES}/__test/**`, (route) => route.fulfill({ contentType: 'text/html', body: hostPage() }));
  await context.route(`${PAGES}/__test/bare.html`, (route) =>
    route.fulfill({ contentType: 'text/html', body: '<!doctype html><html><head></head><body>bare</body></html>' }),
  );
  await page.goto(PAGES + '/__test/bare.html');
  const bareGlobals = await page.evaluate(() => Object.keys(window));
  await page.goto(PAGES + '/__test/index.html', { waitUntil: 'domcontentloaded' });
  assert.equal(await page.evaluate(() => document.readyState !== 'loading'), true);
  assert.equal(await page.locator('frontdesk-widget').count(), 0, 'widget not there yet: script still held back');
  release();
  await ui(page).bubble.waitFor();
  const globals = await page.evaluate(() => Object.keys(window));
  assert.deepEqual(
    globals.filter((g) => !bareGlobals.includes(g)),
    ['Frontdesk'],
    'the widget defines one global namespace only',
  );
  assert.equal(await page.evaluate(() => typeof window.Frontdesk.open), 'function');
  await context.close();
});

test('W1: styled and working under a strict host CSP (no inline styles allowed)', async () => {
  // What the README asks of such a site: the gateway in script-src and connect-src.
  const gw = `${BASE} ${BASE.replace(/^http/, 'ws')}`;
  const csp = `<meta http-equiv="Content-Security-Policy" content="default-src 'self' ${gw}; style-src 'self'; script-src 'self' ${BASE}">`;
  const page0 = hostPage().replace('<head>', '<head>' + csp);
  const { context, page } = await openPage(browser, { pages: { '/__test/index.html': page0 } });
  const w = ui(page);
  await w.bubble.waitFor();
  assert.equal(await w.bubble.evaluate((b) => getComputedStyle(b).backgroundColor), 'rgb(29, 78, 216)');
  await w.bubble.click();
  await w.name.waitFor();
  await context.close();
});

test('W2–W4: empty fields and invalid e-mail show their own warnings', async () => {
  const { context, page, errors } = await openPage(browser);
  const w = ui(page);
  await w.bubble.click();
  await w.start.click();
  await assertText(w.warning, /cannot be empty/i);
  await shot(page, '03-login-empty');
  await axe(page, 'login warning');
  await w.name.fill('Jane Doe');
  await w.start.click();
  await assertText(w.warning, /cannot be empty/i);
  await w.email.fill('jane@');
  await w.start.click();
  await assertText(w.warning, /e-mail address does not look valid/i);
  await shot(page, '04-login-invalid-email');
  assert.deepEqual(errors, []);
  await context.close();
});

test('W3: the server’s 422 errors map to the same warnings', async () => {
  const { context, page } = await openPage(browser);
  const w = ui(page);
  // The widget checks fields itself; to see the server's own refusals, the
  // request is altered on its way to the real gateway and its real 422 answer
  // goes back to the widget.
  let alter = null;
  await page.route(`${BASE}/api/v1/channels/${KEYS.live}/conversations`, (route) => {
    const body = JSON.parse(route.request().postData());
    route.continue({ postData: JSON.stringify(Object.assign(body, alter)) });
  });
  await w.bubble.click();
  await w.name.fill('Jane');
  await w.email.fill('jane@example.com');
  alter = { name: '   ' };
  await w.start.click();
  await assertText(w.warning, /cannot be empty/i);
  alter = { email: 'not-an-email' };
  await w.start.click();
  await assertText(w.warning, /e-mail address does not look valid/i);
  await context.close();
});

test('H1–H5: a closed channel shows the admin text, alternatives and next opening in local time', async () => {
  const info = await channelInfo(KEYS.closed);
  assert.equal(info.open, false, `${KEYS.closed} must be closed now`);
  assert.ok(info.next_open, `${KEYS.closed} must have a next opening time`);
  const timezoneId = 'Asia/Tokyo';
  const { context, page } = await openPage(browser, { key: KEYS.closed, timezoneId });
  const w = ui(page);
  await w.bubble.click();
  const panel = w.host.locator('section[role=dialog]');
  await assertText(panel, /closed/i);
  // The admin's own text (H5), with `{next_open}` filled in by the widget when used.
  for (const part of ((info.closed && info.closed.text) || '').split('{next_open}')) {
    if (part.trim()) await assertText(panel, part.trim());
  }
  const localTime = new Intl.DateTimeFormat('en', { hour: '2-digit', minute: '2-digit', timeZone: timezoneId }).format(new Date(info.next_open));
  const weekday = new Intl.DateTimeFormat('en', { weekday: 'long', timeZone: timezoneId }).format(new Date(info.next_open));
  const next = w.host.locator('p.next');
  await assertText(next, localTime);
  await assertText(next, weekday);
  for (const alt of (info.closed && info.closed.alternatives) || []) {
    const link = w.host.locator('ul.alts a', { hasText: alt.value });
    const href = await link.getAttribute('href');
    const expected = { phone: /^tel:\+?[\d*#]+$/, email: /^mailto:/, link: /^https?:\/\// }[alt.kind];
    assert.match(href, expected, `alternative ${alt.kind} is a ${expected} link`);
  }
  assert.equal(await w.start.count(), 0, 'no login form while closed: the visitor does not have to try first');
  await shot(page, '05-out-of-hours');
  await axe(page, 'out of hours');
  await context.close();
});

test('L2: keyboard only, visible focus, focus into the chat and back to the bubble', async () => {
  const { context, page } = await openPage(browser);
  const w = ui(page);
  await w.bubble.waitFor();
  await w.bubble.focus();
  const ring = await w.bubble.evaluate((b) => getComputedStyle(b).outlineStyle + ' ' + getComputedStyle(b).boxShadow);
  assert.ok(!/^none none$/.test(ring), `focused bubble shows a ring, got ${ring}`);
  await page.keyboard.press('Enter');
  await w.name.waitFor();
  assert.equal(await w.name.evaluate((el) => el.getRootNode().activeElement === el), true, 'focus moved into the chat (Name field)');
  const outline = await w.name.evaluate((el) => getComputedStyle(el).outlineStyle);
  assert.notEqual(outline, 'none', 'focused field has a visible outline');
  await page.keyboard.press('Tab');
  assert.equal(await w.email.evaluate((el) => el.getRootNode().activeElement === el), true, 'Tab reaches Email');
  await page.keyboard.press('Escape');
  await w.name.waitFor({ state: 'hidden' });
  assert.equal(await w.bubble.evaluate((el) => el.getRootNode().activeElement === el), true, 'focus back on the bubble');
  await context.close();
});

test('L1: a French page gets the French widget', async () => {
  const { context, page } = await openPage(browser, { lang: 'fr', title: 'Plomberie Acme' });
  const w = ui(page, 'fr');
  await w.bubble.click();
  await w.name.waitFor();
  await w.email.waitFor();
  await w.start.click();
  await assertText(w.warning, /ne peuvent pas être vides/);
  await w.name.fill('Jeanne');
  await w.email.fill('jeanne@');
  await w.start.click();
  await assertText(w.warning, /adresse e-mail/);
  await shot(page, '06-french-login');
  await axe(page, 'French login');
  await context.close();
});

async function assertText(locator, expected) {
  // Polls the locator until it shows the expected text (Playwright's own wait), then asserts.
  const re = expected instanceof RegExp ? expected : new RegExp(expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  await locator.filter({ hasText: re }).first().waitFor();
  assert.match(await locator.first().innerText(), re);
}
