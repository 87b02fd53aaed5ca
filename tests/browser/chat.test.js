'use strict';
// R1, R2, C1, X1, X2, L1 with a real agent on the other side: waiting with
// queue position, greeting, messages both ways with typing and receipts,
// resume after reload and navigation, end and restart, chatbot menu.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { PAGES, KEYS, launch, openPage, ui, login, shot, axe, stored, endConversation } = require('./harness');
const { startAgent } = require('./agent');

let browser;
let agent;
let current = null; // { page, key } of the test running, ended afterwards so the agent is free
const unique = (p) => `${p} ${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;

before(async () => {
  [browser, agent] = await Promise.all([launch(), startAgent()]);
});
after(async () => {
  await Promise.all([browser?.close(), agent?.stop()]);
});
afterEach(async () => {
  if (current) await endConversation(current.page, current.key);
  if (current) await current.page.context().close();
  current = null;
});

async function track(opts) {
  const r = await openPage(browser, opts);
  current = { page: r.page, key: opts && opts.key ? opts.key : KEYS.live };
  return r;
}

async function text(locator) {
  return (await locator.innerText()).trim();
}

test('R1 + C1: waiting with queue position, greeting, messages both ways, typing, receipts', async () => {
  const { page, errors } = await track();
  const visitor = unique('Jane');
  const w = await login(page, visitor);
  await w.status.filter({ hasText: /queue|waiting/i }).waitFor();
  assert.match(await text(w.status), /(number \d+ in the queue|next in the queue|Waiting for an agent)/);
  await shot(page, '07-waiting');
  await axe(page, 'waiting');

  const offer = await agent.nextOffer({ match: visitor });
  assert.match(offer.body, new RegExp(visitor));
  const chat = offer.conversationId;

  // Agent types, then greets: typing indicator, then the greeting in real time.
  await agent.typing(chat, 'composing');
  await w.typing.filter({ hasText: /typing/i }).waitFor();
  await shot(page, '08-agent-typing');
  const greeting = unique('Hello, I am your agent');
  await agent.reply(chat, greeting);
  await w.messages(greeting).waitFor();
  await w.typing.filter({ hasText: /typing/i }).waitFor({ state: 'detached' }).catch(() => {});
  assert.equal(await w.typing.innerText(), '', 'typing indicator gone once the message arrived');
  assert.equal(await w.status.innerText(), '', 'no waiting line once the agent is there');

  // Visitor types (agent sees composing), Shift+Enter adds a line, Enter sends.
  await w.message.click();
  await page.keyboard.type('My sink');
  await agent.nextChatState(chat, 'composing');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('is leaking');
  assert.equal(await w.message.inputValue(), 'My sink\nis leaking');
  await page.keyboard.press('Enter');
  const got = await agent.nextMessage(chat, { match: 'is leaking' });
  assert.equal(got.body, 'My sink\nis leaking');
  assert.equal(await w.message.inputValue(), '', 'composer cleared after sending');
  const mine = w.messages('is leaking');
  await mine.and(w.host.locator('[data-status=sent], [data-status=delivered], [data-status=read]')).waitFor();

  // The agent's client acknowledged it (XEP-0184): Delivered.
  await mine.and(w.host.locator('[data-status=delivered]')).waitFor();
  assert.match(await text(mine.locator('.st')), /Delivered/);
  // The agent reads it (XEP-0333): Read.
  await agent.displayed(chat, got.id);
  await mine.and(w.host.locator('[data-status=read]')).waitFor();
  assert.match(await text(mine.locator('.st')), /Read/);

  const answer = unique('A plumber is on the way');
  await agent.reply(chat, answer);
  await w.messages(answer).waitFor();
  const live = await w.host.locator('[aria-live=polite]').innerText();
  assert.match(live, new RegExp(answer), 'incoming message announced in the live region');
  await shot(page, '09-chat');
  await axe(page, 'chat');
  assert.deepEqual(errors, []);
});

test('C1: reload and navigation resume the same conversation, no duplicates, draft kept', async () => {
  const { page } = await track();
  const visitor = unique('Resume');
  const w = await login(page, visitor);
  const offer = await agent.nextOffer({ match: visitor });
  const chat = offer.conversationId;
  const hello = unique('Greeting before reload');
  await agent.reply(chat, hello);
  await w.messages(hello).waitFor();
  const first = unique('first visitor line');
  await w.message.fill(first);
  await w.message.press('Enter');
  await agent.nextMessage(chat, { match: first });
  const before = (await stored(page)).conv.id;

  // Something typed but not sent survives the reload.
  await w.message.fill('half-typed question');
  await page.reload();
  await w.messages(hello).waitFor();
  assert.equal((await stored(page)).conv.id, before, 'same conversation after reload');
  assert.equal(await w.messages(hello).count(), 1, 'agent greeting shown once');
  assert.equal(await w.messages(first).count(), 1, 'visitor message shown once');
  assert.equal(await w.message.inputValue(), 'half-typed question');

  // Events after the reload arrive live, once.
  const after = unique('After reload');
  await agent.reply(chat, after);
  await w.messages(after).waitFor();
  assert.equal(await w.messages(after).count(), 1);

  // Navigation to another page of the site.
  await page.goto(PAGES + '/__test/other.html');
  await w.messages(after).waitFor();
  assert.equal(await w.messages(hello).count(), 1);
  assert.equal(await w.messages(after).count(), 1);
  const nav = unique('After navigation');
  await agent.reply(chat, nav);
  await w.messages(nav).waitFor();
  await w.message.fill('');
  await w.message.type('still here');
  await w.message.press('Enter');
  await agent.nextMessage(chat, { match: 'still here' });
  assert.deepEqual(agent.messagesFrom(chat).filter((b) => b === first), [first], 'agent got the first line exactly once');

  // Panel minimised: a new agent message shows as a count on the bubble.
  await page.getByRole('button', { name: 'Minimize chat', exact: true }).click();
  const unseen = unique('While minimised');
  await agent.reply(chat, unseen);
  const badge = w.host.locator('.badge');
  await badge.filter({ hasText: '1 new' }).waitFor();
  assert.equal(await w.bubble.getAttribute('aria-describedby'), await badge.getAttribute('id'));
  await w.bubble.click();
  await w.messages(unseen).waitFor();
  assert.equal(await badge.isVisible(), false, 'count cleared once the chat is open');
});

test('X1 + X2: End chat asks, Yes ends it and tells the agent, Start chat opens a fresh one', async () => {
  const { page } = await track();
  const visitor = unique('Closer');
  const w = await login(page, visitor);
  const offer = await agent.nextOffer({ match: visitor });
  await agent.reply(offer.conversationId, 'Hi there');
  await w.messages('Hi there').waitFor();

  await w.end.click();
  await w.no.click();
  await w.yes.waitFor({ state: 'hidden' });
  assert.equal(await w.message.isVisible(), true, 'No keeps the chat going');

  await w.end.click();
  await w.yes.waitFor();
  await shot(page, '10-end-confirm');
  await axe(page, 'end confirmation');
  const mark = agent.mark();
  await w.yes.click();
  await w.host.locator('.ended').filter({ hasText: /ended/i }).waitFor();
  await agent.endNotice(offer.conversationId, { from: mark });
  assert.equal(await w.message.isVisible(), false, 'no composer once ended');
  await shot(page, '11-ended');
  await axe(page, 'ended');
  const old = (await stored(page)).conv.id;

  await w.start.click();
  const again = await agent.nextOffer({ match: visitor });
  assert.notEqual(again.conversationId, offer.conversationId, 'a fresh conversation reaches the agent');
  await w.status.filter({ hasText: /queue|waiting/i }).waitFor();
  assert.notEqual((await stored(page)).conv.id, old);
  assert.equal(await w.messages('Hi there').count(), 0, 'the new chat starts empty');
});

test('R2: chatbot options, the option’s welcome message, then an agent', async () => {
  const { page } = await track({ key: KEYS.chatbot });
  const visitor = unique('Bot user');
  const w = await login(page, visitor);
  const options = w.host.locator('.options button');
  await options.first().waitFor();
  assert.ok((await options.count()) >= 1, 'the admin’s options are buttons');
  assert.equal(await w.message.isVisible(), false, 'menu first, no composer yet');
  await shot(page, '12-chatbot-menu');
  await axe(page, 'chatbot menu');
  const label = await text(options.first());
  await options.first().click();
  // The option's own welcome message comes from the server as a system message.
  await w.host.locator('li.msg.system').first().waitFor();
  await w.message.waitFor();
  const offer = await agent.nextOffer({ match: visitor });
  assert.match(offer.body, new RegExp(label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'the offer names the chosen option');
  await agent.reply(offer.conversationId, 'Sales here, how can I help?');
  await w.messages('Sales here').waitFor();
  await shot(page, '13-chatbot-agent');
});

test('L1: the chat screen in French', async () => {
  const { page } = await track({ lang: 'fr', title: 'Plomberie Acme' });
  const visitor = unique('Jeanne');
  const w = await login(page, visitor, { lang: 'fr' });
  await w.send.waitFor();
  await w.end.waitFor();
  await w.status.filter({ hasText: /file d'attente|attente/ }).waitFor();
  const offer = await agent.nextOffer({ match: visitor });
  await agent.reply(offer.conversationId, 'Bonjour !');
  await w.messages('Bonjour !').waitFor();
  await w.message.fill('Merci');
  await w.send.click();
  await agent.nextMessage(offer.conversationId, { match: 'Merci' });
  await w.messages('Merci').and(w.host.locator('[data-status=sent], [data-status=delivered], [data-status=read]')).waitFor();
  assert.match(await text(w.messages('Merci').locator('.st')), /Envoyé|Distribué|Lu/);
  await shot(page, '14-french-chat');
  await axe(page, 'French chat');
});
