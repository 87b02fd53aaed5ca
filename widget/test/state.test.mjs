// Unit tests of state.js: what each server event does to the conversation
// (docs/visitor-api.md, "Events"), without a DOM or a network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialState, applyEvent, addLocal, acked, mergeConversation, statusOf, screenOf, agentName } from '../src/state.js';

const queued = () => initialState({ id: 'c1', state: 'queued', agent: null, queue_position: 2 });
const apply = (state, ...events) => events.reduce(applyEvent, state);
const msg = (seq, extra) => ({ seq, type: 'message', message: { id: 'm' + seq, seq, sender: 'agent', author: 'Alice', body: 'hi ' + seq, created_at: '2026-11-26T10:00:00Z', ...extra } });

test('initial state comes from the Conversation: agent, queue position, nothing seen yet', () => {
  const s = initialState({ state: 'active', agent: { name: 'Alice' }, queue_position: null });
  assert.deepEqual(s.agent, { name: 'Alice' });
  assert.equal(s.queue, null);
  assert.equal(s.seq, 0);
  assert.deepEqual(s.receipts, { delivered: 0, read: 0 });
  assert.deepEqual([s.messages, s.notes, s.typing, s.endedBy], [[], [], false, null]);
  assert.equal(queued().queue, 2);
  const none = initialState(null);
  assert.equal(none.conv, null);
  assert.equal(none.agent, null);
});

test('an event at or below the last seq is ignored (same state object); every new one moves seq', () => {
  const s1 = applyEvent(queued(), { seq: 3, type: 'queue_position', position: 1 });
  assert.equal(s1.seq, 3);
  assert.equal(s1.queue, 1);
  assert.equal(applyEvent(s1, { seq: 3, type: 'queue_position', position: 7 }), s1);
  assert.equal(applyEvent(s1, { seq: 2, type: 'message', message: { id: 'x', seq: 2, sender: 'agent', body: 'late' } }), s1);
  assert.equal(applyEvent(s1, { seq: 4, type: 'queue_position', position: 5 }).queue, 5);
});

test('applyEvent never mutates its input', () => {
  const s0 = queued();
  const frozen = JSON.stringify(s0);
  apply(s0, msg(1), { seq: 2, type: 'agent_joined', agent: { name: 'Alice' } }, { seq: 3, type: 'receipt', status: 'read', up_to_seq: 1 }, { seq: 4, type: 'closed', by: 'agent' });
  assert.equal(JSON.stringify(s0), frozen);
});

test('unknown events: a durable one still counts as seen, an ephemeral one changes nothing', () => {
  const s0 = queued();
  const s1 = applyEvent(s0, { seq: 9, type: 'something_new' });
  assert.equal(s1.seq, 9);
  assert.equal(s1.conv, s0.conv);
  assert.equal(applyEvent(s1, { type: 'something_else' }), s1);
});

test('state events set the conversation state; back to the queue forgets the agent', () => {
  const s = apply(queued(), { seq: 1, type: 'agent_joined', agent: { name: 'Alice' } }, { seq: 2, type: 'state', state: 'active' });
  assert.equal(s.conv.state, 'active');
  assert.deepEqual(s.agent, { name: 'Alice' });
  const q = applyEvent(s, { seq: 3, type: 'state', state: 'queued' });
  assert.equal(q.conv.state, 'queued');
  assert.equal(q.agent, null);
  assert.equal(q.conv.id, 'c1', 'the rest of the Conversation is kept');
  const ended = applyEvent(s, { type: 'state', state: 'ended' });
  assert.equal(ended.conv.state, 'ended');
  assert.deepEqual(ended.agent, { name: 'Alice' }, 'only the queue forgets the agent');
});

test('agent joined: the chat is active, the agent is named, a note is kept', () => {
  const s = applyEvent(queued(), { seq: 4, type: 'agent_joined', agent: { name: 'Alice' } });
  assert.equal(s.conv.state, 'active');
  assert.equal(agentName(s), 'Alice');
  assert.deepEqual(s.notes, [{ seq: 4, kind: 'joined', name: 'Alice' }]);
  const anonymous = applyEvent(queued(), { seq: 1, type: 'agent_joined' });
  assert.equal(agentName(anonymous), null);
  assert.deepEqual(anonymous.notes, [{ seq: 1, kind: 'joined', name: null }]);
});

test('agent left: back in the queue, no agent, the note names who left (or the last agent)', () => {
  const joined = applyEvent(queued(), { seq: 1, type: 'agent_joined', agent: { name: 'Alice' } });
  const left = applyEvent(joined, { seq: 2, type: 'agent_left', agent: { name: 'Alice B.' } });
  assert.equal(left.conv.state, 'queued');
  assert.equal(left.agent, null);
  assert.deepEqual(left.notes.at(-1), { seq: 2, kind: 'left', name: 'Alice B.' });
  const unnamed = applyEvent(joined, { seq: 2, type: 'agent_left' });
  assert.equal(unnamed.notes.at(-1).name, 'Alice', 'falls back to the agent who was in the chat');
  assert.equal(applyEvent(queued(), { seq: 1, type: 'agent_left' }).notes[0].name, null);
});

test('queue position', () => {
  assert.equal(applyEvent(queued(), { seq: 1, type: 'queue_position', position: 1 }).queue, 1);
});

test('messages are kept in seq order, whatever order they arrive in', () => {
  const s = apply(queued(), msg(2), { type: 'message', message: { id: 'm1', seq: 1, sender: 'visitor', body: 'first' } }, msg(5));
  assert.deepEqual(s.messages.map((m) => m.seq), [1, 2, 5]);
});

test('a message event without seq in the message takes the event seq', () => {
  const s = applyEvent(queued(), { seq: 7, type: 'message', message: { id: 'a', sender: 'agent', body: 'x' } });
  assert.equal(s.messages[0].seq, 7);
});

test('an unsent message is completed by the server copy with the same client_id, never shown twice', () => {
  let s = addLocal(queued(), { client_id: 'k1', body: 'hello', created_at: 't0' });
  s = addLocal(s, { client_id: 'k2', body: 'second', created_at: 't1' });
  assert.deepEqual(s.messages.map((m) => [m.client_id, m.seq]), [['k1', undefined], ['k2', undefined]]);
  assert.equal(statusOf(s, s.messages[0]), 'sending');
  // The REST answer for k2 arrives first (no event seq), then the stream's copies of both.
  s = applyEvent(s, { type: 'message', message: { id: 'v2', client_id: 'k2', seq: 4, sender: 'visitor', body: 'second' } });
  assert.equal(s.seq, 0, 'a REST answer does not move the event seq');
  s = applyEvent(s, { seq: 3, type: 'message', message: { id: 'v1', client_id: 'k1', seq: 3, sender: 'visitor', body: 'hello' } });
  const again = applyEvent(s, { seq: 4, type: 'message', message: { id: 'v2', client_id: 'k2', seq: 4, sender: 'visitor', body: 'second' } });
  assert.equal(again.messages, s.messages, 'an acknowledged message is never replaced');
  assert.equal(again.seq, 4);
  assert.deepEqual(again.messages.map((m) => [m.id, m.seq, m.created_at]), [['v1', 3, 't0'], ['v2', 4, 't1']]);
  // The same message by id (e.g. the REST answer after the stream) is ignored too.
  assert.equal(applyEvent(again, { type: 'message', message: { id: 'v1', seq: 3, sender: 'visitor', body: 'hello' } }).messages, again.messages);
});

test('a message the socket acknowledged is sent at once, then takes the server copy once, wherever the ack falls', () => {
  const p = { client_id: 'k1', body: 'hello', created_at: 't0' };
  const local = addLocal(queued(), p);
  const event = { seq: 5, type: 'message', message: { id: 'v1', client_id: 'k1', seq: 5, sender: 'visitor', author: 'Jane', body: 'hello', created_at: 't9' } };
  // The ack first: sent, without moving the event seq; then the event completes it.
  let s = applyEvent(local, { type: 'message', message: acked(p, { type: 'message_ack', client_id: 'k1', seq: 5, created: true }) });
  assert.equal(s.seq, 0, 'an ack is not an event of the stream');
  assert.equal(statusOf(s, s.messages[0]), 'sent');
  assert.deepEqual(s.messages.map((m) => [m.client_id, m.seq, m.id]), [['k1', 5, undefined]]);
  s = applyEvent(s, event);
  assert.equal(s.seq, 5);
  assert.deepEqual(s.messages.map((m) => [m.id, m.seq, m.author]), [['v1', 5, 'Jane']]);
  // The event first: the ack after it changes nothing.
  const first = applyEvent(local, event);
  const then = applyEvent(first, { type: 'message', message: acked(p, { seq: 5 }) });
  assert.equal(then.messages, first.messages);
  assert.deepEqual(then.messages.map((m) => [m.id, m.seq]), [['v1', 5]]);
});

test('unsent messages stay after acknowledged ones', () => {
  let s = addLocal(queued(), { client_id: 'k', body: 'pending', created_at: 't' });
  s = apply(s, msg(1), msg(2));
  assert.deepEqual(s.messages.map((m) => m.seq || 'unsent'), [1, 2, 'unsent']);
});

test('a file message is a message with its attachment', () => {
  const attachment = { id: 'f1', name: 'photo.png', size: 48213, content_type: 'image/png' };
  const s = applyEvent(queued(), { seq: 1, type: 'message', message: { id: 'm', seq: 1, sender: 'visitor', body: 'photo.png', attachment } });
  assert.deepEqual(s.messages[0].attachment, attachment);
});

test('typing: composing shows, paused hides, an agent message hides it; it is not durable', () => {
  const on = applyEvent(queued(), { type: 'typing', state: 'composing' });
  assert.equal(on.typing, true);
  assert.equal(on.seq, 0);
  assert.equal(applyEvent(on, { type: 'typing', state: 'paused' }).typing, false);
  assert.equal(applyEvent(on, msg(1)).typing, false);
  const visitor = applyEvent(on, { seq: 1, type: 'message', message: { id: 'v', seq: 1, sender: 'visitor', body: 'x' } });
  assert.equal(visitor.typing, true, "the visitor's own message does not stop the agent's typing");
});

test('receipts: delivered and read up to a seq; read implies delivered; never backwards', () => {
  let s = apply(queued(), { seq: 1, type: 'message', message: { id: 'a', seq: 1, sender: 'visitor', body: 'a' } }, { seq: 2, type: 'message', message: { id: 'b', seq: 2, sender: 'visitor', body: 'b' } });
  const [a, b] = s.messages;
  assert.deepEqual([statusOf(s, a), statusOf(s, b)], ['sent', 'sent']);
  s = applyEvent(s, { seq: 3, type: 'receipt', status: 'delivered', up_to_seq: 1 });
  assert.deepEqual([statusOf(s, a), statusOf(s, b)], ['delivered', 'sent']);
  s = applyEvent(s, { seq: 4, type: 'receipt', status: 'read', up_to_seq: 2 });
  assert.deepEqual(s.receipts, { delivered: 2, read: 2 });
  assert.deepEqual([statusOf(s, a), statusOf(s, b)], ['read', 'read']);
  s = applyEvent(s, { seq: 5, type: 'receipt', status: 'delivered', up_to_seq: 1 });
  assert.deepEqual(s.receipts, { delivered: 2, read: 2 }, 'an older receipt does not lower the marks');
});

test('closed: the chat has ended, and who ended it is kept', () => {
  const s = applyEvent(queued(), { seq: 9, type: 'closed', by: 'agent', reason: 'done' });
  assert.equal(s.conv.state, 'ended');
  assert.equal(s.endedBy, 'agent');
  assert.equal(screenOf(s, null).ended, true);
});

test('REST answers refresh the Conversation; agent and queue only when named', () => {
  const s = applyEvent(queued(), { seq: 1, type: 'agent_joined', agent: { name: 'Alice' } });
  const m = mergeConversation(s, { state: 'active', agent: null, queue_position: null, last_seq: 9 });
  assert.equal(m.conv.last_seq, 9);
  assert.equal(m.conv.id, 'c1');
  assert.deepEqual(m.agent, { name: 'Alice' });
  assert.equal(m.queue, 2);
  const n = mergeConversation(queued(), { state: 'queued', queue_position: 1, agent: { name: 'Bob' } });
  assert.equal(n.queue, 1);
  assert.equal(agentName(n), 'Bob');
  assert.equal(mergeConversation(initialState(null), { state: 'queued' }).conv.state, 'queued');
});

test('screenOf: waiting, chatbot menu with options, ended, out of hours', () => {
  const bot = { mode: 'chatbot', options: [{ id: 'sales', label: 'Sales' }] };
  const live = { mode: 'live', options: [] };
  assert.deepEqual(screenOf(queued(), live), { ended: false, menu: false, waiting: true, outOfHours: false, options: [] });
  const started = initialState({ state: 'started' });
  assert.equal(screenOf(started, live).waiting, true);
  assert.deepEqual(screenOf(started, bot), { ended: false, menu: true, waiting: false, outOfHours: false, options: bot.options });
  const menu = initialState({ state: 'chatbot_menu', options: [{ id: 'x', label: 'X' }] });
  assert.deepEqual(screenOf(menu, bot).options, [{ id: 'x', label: 'X' }], "the conversation's own options come first");
  assert.deepEqual(screenOf(initialState({ state: 'chatbot_menu' }), null).options, []);
  assert.equal(screenOf(initialState({ state: 'active' }), live).waiting, false);
  const ooh = screenOf(initialState({ state: 'closed_out_of_hours' }), live);
  assert.equal(ooh.ended && ooh.outOfHours && !ooh.waiting, true);
  assert.equal(screenOf(initialState(null), live).waiting, true, 'no conversation yet reads as queued');
});

test('a replayed history gives the same state as the live stream', () => {
  const events = [
    { seq: 1, type: 'state', state: 'queued' },
    { seq: 2, type: 'queue_position', position: 1 },
    { seq: 3, type: 'agent_joined', agent: { name: 'Alice' } },
    msg(4),
    { seq: 5, type: 'message', message: { id: 'v', client_id: 'k', seq: 5, sender: 'visitor', body: 'hi' } },
    { seq: 6, type: 'receipt', status: 'read', up_to_seq: 5 },
    { seq: 7, type: 'closed', by: 'visitor' },
  ];
  const once = apply(queued(), ...events);
  const twice = apply(once, ...events);
  assert.equal(twice, once, 'replaying what was seen changes nothing');
  assert.deepEqual(
    [once.conv.state, agentName(once), once.queue, once.seq, once.messages.length, once.notes.length, once.endedBy],
    ['ended', 'Alice', 1, 7, 2, 1, 'visitor'],
  );
});
