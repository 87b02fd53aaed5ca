'use strict';
// Messages over the event socket (issue 15): while the widget's socket is
// open, a message is one `message` frame and no HTTP request; when the
// socket is down, or a frame gets no answer in time, the same message goes
// by POST with the same client_id and arrives once.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { launch, openPage, login, stored, endConversation } = require('./harness');
const { startAgent } = require('./agent');

let browser;
let agent;
let current = null; // the page of the test running, its chat ended afterwards so the agent is free
const unique = (p) => `${p} ${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
const EVENTS = /\/api\/v1\/conversations\/[^/]+\/events$/;
const SENT = '[data-status=sent], [data-status=delivered], [data-status=read]';

before(async () => {
  [browser, agent] = await Promise.all([launch(), startAgent()]);
});
after(async () => {
  await Promise.all([browser?.close(), agent?.stop()]);
});
afterEach(async () => {
  if (current) {
    await endConversation(current);
    await current.context().close();
  }
  current = null;
});

/** A page whose message POSTs are recorded, as `{ body, status }`. */
async function tracked() {
  const { page } = await openPage(browser);
  current = page;
  const posts = [];
  page.on('response', (r) => {
    const q = r.request();
    if (q.method() === 'POST' && /\/messages$/.test(new URL(q.url()).pathname)) {
      posts.push({ body: q.postDataJSON(), status: r.status() });
    }
  });
  return { page, posts };
}

async function send(w, text) {
  await w.message.fill(text);
  await w.message.press('Enter');
}

test('with the event socket open, a message is one frame on it and no POST', async () => {
  const { page, posts } = await tracked();
  const frames = [];
  page.on('websocket', (ws) => {
    if (!EVENTS.test(new URL(ws.url()).pathname)) return;
    ws.on('framesent', (f) => {
      const frame = JSON.parse(f.payload);
      if (frame.type === 'message') frames.push(frame);
    });
  });
  const visitor = unique('Socket');
  const w = await login(page, visitor);
  const offer = await agent.nextOffer({ match: visitor });
  const chat = offer.conversationId;
  await agent.reply(chat, 'Hello over the socket');
  await w.messages('Hello over the socket').waitFor(); // the socket is open and following

  const text = unique('sent as a frame');
  await send(w, text);
  await w.messages(text).and(w.host.locator(SENT)).waitFor();
  await agent.nextMessage(chat, { match: text });
  assert.equal(frames.length, 1, 'one message frame');
  assert.equal(frames[0].body, text);
  assert.equal(typeof frames[0].client_id, 'string');
  assert.deepEqual(posts, [], 'no POST /messages while the socket is open');
  assert.equal(await w.messages(text).count(), 1, 'shown once (the ack and the event are one message)');
  assert.deepEqual((await stored(page)).pending, [], 'nothing left pending');
  assert.equal(agent.messagesFrom(chat).filter((m) => m === text).length, 1, 'the agent got it once');
});

test('with the event socket down, the message goes by POST and arrives once', async () => {
  const { page, posts } = await tracked();
  // Every event socket is refused at once (1013: try again later), so the
  // widget keeps reconnecting and its socket is never open.
  await page.routeWebSocket(EVENTS, (ws) => ws.close({ code: 1013, reason: 'test: down' }));
  const visitor = unique('Fallback');
  const w = await login(page, visitor);
  const offer = await agent.nextOffer({ match: visitor });
  const chat = offer.conversationId;
  await w.band.filter({ hasText: /Connection lost — reconnecting/ }).waitFor();

  const text = unique('sent by POST');
  await send(w, text);
  await w.messages(text).and(w.host.locator(SENT)).waitFor();
  await agent.nextMessage(chat, { match: text });
  assert.deepEqual(posts.map((p) => [p.body.body, p.status]), [[text, 201]]);
  assert.deepEqual((await stored(page)).pending, [], 'nothing left pending');
});

test('a message frame with no answer in time goes by POST with the same client_id', async () => {
  const { page, posts } = await tracked();
  // A socket that opens but is answered by nobody: the frame is sent, the
  // ack never comes.
  const frames = [];
  await page.routeWebSocket(EVENTS, (ws) => {
    ws.onMessage((m) => {
      const frame = JSON.parse(m);
      if (frame.type === 'message') frames.push(frame);
    });
  });
  const visitor = unique('Silent');
  const w = await login(page, visitor);
  const offer = await agent.nextOffer({ match: visitor });
  const chat = offer.conversationId;

  const text = unique('unanswered frame');
  await send(w, text);
  await w.messages(text).and(w.host.locator(SENT)).waitFor({ timeout: 30000 });
  await agent.nextMessage(chat, { match: text });
  assert.equal(frames.length, 1, 'the frame was sent first');
  assert.deepEqual(posts.map((p) => [p.body.client_id, p.body.body, p.status]), [[frames[0].client_id, text, 201]]);
  assert.equal(agent.messagesFrom(chat).filter((m) => m === text).length, 1, 'the agent got it once');
});
