// Unit tests of preview.js (the console's preview mode): the preview chat a
// draft gives, read through state.js as the widget reads a real one, and
// the stand-in API that answers without the network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { previewChat, createPreview } from '../src/preview.js';
import { initialState, applyEvent, screenOf } from '../src/state.js';

const bot = {
  key: 'web',
  name: 'Boiler Shop',
  mode: 'chatbot',
  open: true,
  options: [
    { id: 'sales', label: 'Buy a boiler', welcome: 'A sales advisor is on the way.' },
    { id: 'repair', label: 'Fix my boiler', welcome: 'A technician will answer.' },
  ],
};

/** The widget's state after the preview chat, as app.js builds it. */
function replay(channel, steps) {
  const { conv, events } = previewChat(channel, steps);
  return events.reduce(applyEvent, initialState(conv));
}

test('a chatbot draft starts at its menu, with the draft’s options', () => {
  const state = replay(bot, { chosen: null, ended: false });
  const screen = screenOf(state, bot);
  assert.equal(screen.menu, true);
  assert.deepEqual(screen.options.map((o) => o.label), ['Buy a boiler', 'Fix my boiler']);
  assert.equal(state.messages.length, 0);
});

test('a chosen option shows its welcome text, then the queue; a new draft’s text replaces it', () => {
  const at = '2026-03-02T09:00:00Z';
  const state = replay(bot, { chosen: 'repair', ended: false, at });
  assert.deepEqual(state.messages.map((m) => [m.sender, m.author, m.body, m.seq]), [['system', 'Boiler Shop', 'A technician will answer.', 1]]);
  assert.equal(state.conv.state, 'queued');
  assert.equal(state.queue, 1);
  assert.equal(screenOf(state, bot).waiting, true);
  const edited = { ...bot, options: [bot.options[0], { ...bot.options[1], welcome: 'Hello from the new text.' }] };
  assert.equal(replay(edited, { chosen: 'repair', ended: false, at }).messages[0].body, 'Hello from the new text.');
  // The option removed from the draft: back to the menu.
  assert.equal(screenOf(replay({ ...bot, options: [bot.options[0]] }, { chosen: 'repair' }), bot).menu, true);
});

test('a later step only appends events, so a replay never applies one twice', () => {
  const before = previewChat(bot, { chosen: 'sales', ended: false }).events;
  const after = previewChat(bot, { chosen: 'sales', ended: true }).events;
  assert.deepEqual(after.slice(0, before.length), before);
  assert.deepEqual(after.map((e) => e.seq), [1, 2, 3, 4]);
  const state = replay(bot, { chosen: 'sales', ended: true });
  assert.equal(state.conv.state, 'ended');
  assert.equal(state.endedBy, 'visitor');
  assert.equal(screenOf(state, bot).ended, true);
});

test('a live-chat draft waits in the queue at once', () => {
  const live = { ...bot, mode: 'live', options: [] };
  const state = replay(live, { chosen: null, ended: false });
  assert.equal(state.conv.state, 'queued');
  assert.equal(state.queue, 1);
  assert.equal(screenOf(state, live).waiting, true);
});

test('the stand-in API answers from the draft and refuses what would send', async () => {
  const preview = createPreview();
  const loading = preview.api.channel('web');
  preview.set(bot);
  preview.set({ ...bot, name: 'Newer draft' });
  assert.equal((await loading).name, 'Newer draft', 'the draft current when the widget reads it');

  const started = await preview.api.start('web', { name: 'Ann', email: 'ann@example.com' });
  assert.equal(started.conversation.state, 'chatbot_menu');
  const seen = [];
  const conn = preview.connect({ onEvent: (ev) => seen.push(ev) });
  assert.equal(conn.send({ type: 'typing', state: 'composing' }), false, 'nothing goes out');
  await preview.api.choice('preview', 'preview', 'sales');
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(seen.map((e) => e.type), ['message', 'state', 'queue_position']);
  await assert.rejects(preview.api.choice('preview', 'preview', 'nope'), { code: 'unknown_option' });

  for (const refused of [preview.api.send('preview', 'preview', 'c1', 'Hi'), preview.api.download('preview', 'preview', 'f1'), preview.api.upload().promise]) {
    await assert.rejects(refused, { code: 'preview' });
  }
  assert.equal((await preview.api.close()).state, 'ended');
  assert.equal(preview.chat().events.at(-1).type, 'closed');

  preview.set({ ...bot, open: false, next_open: '2026-03-03T08:00:00Z', closed: { text: 'Back {next_open}.', alternatives: [] } });
  await assert.rejects(preview.api.start('web', {}), (e) => e.code === 'closed' && e.body.next_open === '2026-03-03T08:00:00Z');
});
