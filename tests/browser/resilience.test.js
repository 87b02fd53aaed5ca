'use strict';
// E1 + E4 + resume: the real gateway is stopped mid-chat. The widget shows
// the red band, keeps what the visitor sends as failed messages with Retry
// (also across a reload), reconnects when the gateway is back, and each
// retried message reaches the agent exactly once.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { launch, openPage, ui, login, shot, axe, stored, endConversation, stopGateway, startGateway, healthy } = require('./harness');
const { startAgent } = require('./agent');

let browser;
let agent;
before(async () => {
  [browser, agent] = await Promise.all([launch(), startAgent()]);
});
after(async () => {
  if (!(await healthy())) await startGateway();
  await Promise.all([browser?.close(), agent?.stop()]);
});

test('E1 + E4: gateway stopped → red band → gateway back → Retry delivers exactly once', async () => {
  const { page, context } = await openPage(browser);
  try {
    const visitor = `Outage ${Date.now().toString(36)}`;
    const w = await login(page, visitor);
    const offer = await agent.nextOffer({ match: visitor });
    const chat = offer.conversationId;
    await agent.reply(chat, 'Hello, how can I help?');
    await w.messages('Hello, how can I help?').waitFor();

    await stopGateway();
    await w.band.filter({ hasText: /Connection lost — reconnecting/ }).waitFor();
    assert.equal(await w.band.getAttribute('role'), 'alert');

    const a = `first while down ${Date.now()}`;
    const b = `second while down ${Date.now()}`;
    for (const text of [a, b]) {
      await w.message.fill(text);
      await w.message.press('Enter');
      await w.messages(text).and(w.host.locator('[data-status=failed]')).waitFor();
    }
    assert.equal(await w.messages(a).getByRole('button', { name: 'Retry', exact: true }).count(), 1, 'failed message has Retry');
    await w.message.fill('typed during the outage');
    const kept = (await stored(page)).pending.map((p) => p.body);
    assert.deepEqual(kept, [a, b], 'unsent messages are kept in the browser');
    await shot(page, '15-connection-lost');
    await axe(page, 'error band + failed message');

    await startGateway();
    // Reconnected: the band now says what to do with the unsent messages.
    // (Backoff is capped at 10 s plus jitter, so allow for a full step.)
    await w.band.filter({ hasText: /Some messages were not sent\. Press Retry/ }).waitFor({ timeout: 30000 });

    // Retry the first one right away: it arrives once.
    await w.messages(a).getByRole('button', { name: 'Retry', exact: true }).click();
    await w.messages(a).and(w.host.locator('[data-status=sent], [data-status=delivered], [data-status=read]')).waitFor();
    await agent.nextMessage(chat, { match: a });

    // The second one survives a reload, still failed with Retry, then arrives once.
    await page.reload();
    await w.messages(b).and(w.host.locator('[data-status=failed]')).waitFor();
    assert.equal(await w.message.inputValue(), 'typed during the outage', 'draft kept across the reload');
    await w.messages(b).getByRole('button', { name: 'Retry', exact: true }).click();
    await w.messages(b).and(w.host.locator('[data-status=sent], [data-status=delivered], [data-status=read]')).waitFor();
    await agent.nextMessage(chat, { match: b });

    // A later message proves the stream has moved past both: nothing duplicated on either side.
    await w.message.fill('after the outage');
    await w.message.press('Enter');
    await agent.nextMessage(chat, { match: 'after the outage' });
    const fromVisitor = agent.messagesFrom(chat);
    assert.equal(fromVisitor.filter((m) => m === a).length, 1, 'agent got the first retried message once');
    assert.equal(fromVisitor.filter((m) => m === b).length, 1, 'agent got the second retried message once');
    assert.equal(await w.messages(a).count(), 1);
    assert.equal(await w.messages(b).count(), 1);
    assert.deepEqual((await stored(page)).pending, [], 'nothing left pending');
    await agent.reply(chat, 'All received');
    await w.messages('All received').waitFor();
    assert.equal(await w.band.isVisible(), false, 'no red band once everything is delivered');
  } finally {
    await endConversation(page);
    await context.close();
  }
});
