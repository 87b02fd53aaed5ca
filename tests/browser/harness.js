'use strict';
// Shared set-up for the browser tests: Debian's chromium driven by
// playwright-core (no browser download), host pages served by route
// interception on an allowed origin, the widget's controls found by their fixed accessible names,
// screenshots and axe-core checks per screen, and the hooks that stop and
// start the real gateway.
//
// Environment:
//   FRONTDESK_URL           base URL of the running gateway (required)
//   FRONTDESK_PAGE_ORIGIN   origin the test pages are served on     (default: FRONTDESK_URL's)
//   FRONTDESK_ARTIFACTS     where screenshots go, in screenshots/  (default target/test-artifacts)
//   FRONTDESK_KEY_LIVE      live-chat channel key, open now        (default "demo")
//   FRONTDESK_KEY_CHATBOT   chatbot channel key, open now          (default "demo-bot")
//   FRONTDESK_KEY_CLOSED    channel that is closed now (next_open) (default "demo-closed")
//   FRONTDESK_STOP_CMD      shell command that stops the gateway   (resilience test)
//   FRONTDESK_START_CMD     shell command that starts it again, in the background
//   CHROMIUM                browser binary (default /usr/bin/chromium)
//   FRONTDESK_WIDGET_DEV    development only, never in CI: path of a widget.js
//                           served instead of the gateway's embedded copy, to try
//                           a widget change without rebuilding the gateway

const assert = require('node:assert/strict');
const { execSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { default: AxeBuilder } = require('@axe-core/playwright');

const BASE = (process.env.FRONTDESK_URL || '').replace(/\/+$/, '');
if (!BASE) throw new Error('FRONTDESK_URL must point at a running gateway (e.g. http://127.0.0.1:8080)');
const KEYS = {
  live: process.env.FRONTDESK_KEY_LIVE || 'demo',
  chatbot: process.env.FRONTDESK_KEY_CHATBOT || 'demo-bot',
  closed: process.env.FRONTDESK_KEY_CLOSED || 'demo-closed',
};
// Host pages exist only through route interception, so any origin works;
// the channels' allowed_origins must include it.
const PAGES = (process.env.FRONTDESK_PAGE_ORIGIN || new URL(BASE).origin).replace(/\/+$/, '');
// Test output never goes into the source tree: target/ is build output.
const ARTIFACTS = path.resolve(process.env.FRONTDESK_ARTIFACTS || path.join(__dirname, '../../target/test-artifacts'));
const SHOTS = path.join(ARTIFACTS, 'screenshots');
const STEP = 20000; // ms: generous upper bound for one awaited UI event

async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Pages fulfilled by route interception have no IP address space, so
      // Chromium's Local Network Access checks would block their WebSocket
      // to the loopback gateway; real pages are not affected.
      '--disable-features=LocalNetworkAccessChecks',
    ],
  });
  if (process.env.FRONTDESK_WIDGET_DEV) {
    const newContext = browser.newContext.bind(browser);
    browser.newContext = async (opts) => {
      const context = await newContext(opts);
      await context.route(`${BASE}/widget.js`, (route) =>
        route.fulfill({ contentType: 'text/javascript', body: fs.readFileSync(process.env.FRONTDESK_WIDGET_DEV) }),
      );
      return context;
    };
  }
  return browser;
}

/** A host page on PAGES (an allowed origin of the channels), served by route interception. */
function hostPage({ key = KEYS.live, lang = 'en', title = 'Acme Plumbing', body = '' } = {}) {
  return `<!doctype html><html lang="${lang}"><head><meta charset="utf-8"><title>${title}</title>
<style>* { font-family: "Comic Sans MS", cursive !important; color: red } button { background: lime; padding: 40px } div { border: 3px dashed orange }</style>
<script async src="${BASE}/widget.js" data-key="${key}"></script></head>
<body><h1>${title}</h1><div><p>Some host content.</p><a href="${PAGES}/__test/other.html">Other page</a>${body}</div></body></html>`;
}

/** New context + page; `pages` maps paths under /__test/ to HTML served on PAGES. */
async function openPage(browser, { pages = {}, timezoneId, locale, path: first = '/__test/index.html', ...pageOpts } = {}) {
  const context = await browser.newContext({ timezoneId, locale, viewport: { width: 1100, height: 760 } });
  await context.route(`${PAGES}/__test/**`, (route) => {
    const p = new URL(route.request().url()).pathname;
    const html = pages[p] || hostPage(pageOpts);
    route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(PAGES + first);
  return { context, page, errors };
}

/** Locators for the widget, by the fixed accessible names of issue 4. */
function ui(page, lang = 'en') {
  const n =
    lang === 'fr'
      ? { open: 'Ouvrir le chat', name: 'Nom', email: 'E-mail', start: 'Démarrer le chat', send: 'Envoyer', retry: 'Réessayer', end: 'Terminer le chat', yes: 'Oui', no: 'Non', message: 'Message' }
      : { open: 'Open chat', name: 'Name', email: 'Email', start: 'Start chat', send: 'Send', retry: 'Retry', end: 'End chat', yes: 'Yes', no: 'No', message: 'Message' };
  const host = page.locator('frontdesk-widget');
  const btn = (name) => page.getByRole('button', { name, exact: true });
  return {
    host,
    names: n,
    bubble: btn(n.open),
    name: page.getByRole('textbox', { name: n.name, exact: true }),
    email: page.getByRole('textbox', { name: n.email, exact: true }),
    start: btn(n.start),
    message: page.getByRole('textbox', { name: n.message, exact: true }),
    send: btn(n.send),
    retry: btn(n.retry),
    end: btn(n.end),
    yes: btn(n.yes),
    no: btn(n.no),
    band: host.locator('.band'),
    warning: host.locator('form [role=alert]'),
    log: host.locator('ol.log'),
    status: host.locator('p.status[role=status]'),
    typing: host.locator('p.status[aria-hidden=true]'),
    messages: (text) => host.locator('li.msg', { hasText: text }),
  };
}

/** Opens the widget and starts a chat as `name`. */
async function login(page, name, { lang = 'en', email } = {}) {
  const w = ui(page, lang);
  await w.bubble.click();
  await w.name.fill(name);
  await w.email.fill(email || `${name.toLowerCase().replace(/[^a-z0-9]+/g, '.')}@example.com`);
  await w.start.click();
  return w;
}

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name + '.png') });
}

/**
 * axe-core on `include` (default: the widget only, not the host page); fails
 * on a violation of one of `impacts` (default serious and critical; null: any).
 */
async function axe(page, screen, { include = 'frontdesk-widget', impacts = ['serious', 'critical'] } = {}) {
  const builder = new AxeBuilder({ page });
  if (include) builder.include(include);
  const result = await builder.analyze();
  const bad = result.violations.filter((v) => !impacts || impacts.includes(v.impact));
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
    [],
    `axe violations on screen "${screen}"`,
  );
}

/** The widget's stored state for a channel key (token, conversation id, …). */
async function stored(page, key = KEYS.live) {
  return page.evaluate((k) => JSON.parse(localStorage.getItem('frontdesk:v1:' + k) || '{}'), key);
}

/** Ends the page's conversation through the API so the agent is free for the next test. */
async function endConversation(page, key = KEYS.live) {
  const s = await stored(page, key).catch(() => ({}));
  if (!s.conv) return;
  await fetch(`${BASE}/api/v1/conversations/${s.conv.id}/close`, {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + s.conv.token, 'Content-Type': 'application/json', Origin: PAGES },
    body: '{}',
  }).catch(() => {});
}

async function channelInfo(key) {
  const r = await fetch(`${BASE}/api/v1/channels/${encodeURIComponent(key)}`);
  assert.equal(r.status, 200, `channel ${key} must exist on the gateway`);
  return r.json();
}

async function healthy() {
  try {
    return (await fetch(BASE + '/healthz')).ok;
  } catch (e) {
    return false;
  }
}

/** Polls `cond` every 100 ms until true or `timeout` ms (for conditions outside the page, e.g. the gateway's health). */
async function until(cond, what, timeout = 30000) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function gatewayCommand(name) {
  const cmd = process.env[name];
  if (!cmd) throw new Error(`${name} must be set: the resilience test stops and restarts the real gateway`);
  execSync(cmd, { stdio: 'inherit', shell: '/bin/sh' });
}

async function stopGateway() {
  gatewayCommand('FRONTDESK_STOP_CMD');
  await until(async () => !(await healthy()), 'the gateway to stop');
}

async function startGateway() {
  gatewayCommand('FRONTDESK_START_CMD');
  await until(healthy, 'the gateway to answer /healthz again', 60000);
}

module.exports = {
  BASE,
  PAGES,
  KEYS,
  SHOTS,
  STEP,
  launch,
  hostPage,
  openPage,
  ui,
  login,
  shot,
  axe,
  stored,
  endConversation,
  channelInfo,
  healthy,
  until,
  stopGateway,
  startGateway,
};
