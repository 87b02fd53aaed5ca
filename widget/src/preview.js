// Preview mode, for the console's channel editor: the widget renders a
// draft channel handed to it instead of fetching one, and opens nothing on
// the network. This module stands in for api.js and conn.js. A chat
// "starts" here, a chatbot option shows its welcome text, ending and
// starting again work; sending, uploads and downloads are refused with the
// code `preview`. The draft has the shape of the visitor API's channel info
// (GET /channels/{key}), each option with its `welcome` text as well.
// `previewChat` is pure, so node tests it (test/preview.test.mjs).

import { ApiError } from './api.js';

const ID = 'preview';

/**
 * The preview chat of `channel` after the visitor's steps
 * ({ chosen: option id or null, ended, at: ISO time of the start }), as the
 * server would give it: `conv` as the start answer's conversation, then
 * `events` (seq 1, 2, … in a stable order: a later step only appends).
 */
export function previewChat(channel, steps) {
  const c = channel || {};
  const chatbot = c.mode === 'chatbot';
  const conv = chatbot ? { id: ID, state: 'chatbot_menu' } : { id: ID, state: 'queued', queue_position: 1 };
  const events = [];
  const push = (ev) => events.push({ ...ev, seq: events.length + 1 });
  const option = chatbot && (c.options || []).find((o) => o.id === steps.chosen);
  if (option) {
    const message = { id: 'preview-welcome', sender: 'system', author: c.name || '', body: option.welcome || '', created_at: steps.at };
    push({ type: 'message', message });
    push({ type: 'state', state: 'queued' });
    push({ type: 'queue_position', position: 1 });
  }
  if (steps.ended) push({ type: 'closed', by: 'visitor' });
  return { conv, events };
}

/**
 * The stand-in: `set(channel)` hands it the draft; `api` answers like
 * api.js; `connect` like conn.js's connectEvents; `chat()` is the current
 * preview chat (previewChat of the draft and the steps so far).
 */
export function createPreview() {
  let channel = null;
  let steps = { chosen: null, ended: false, at: null };
  let listener = null;
  let arrived;
  const first = new Promise((resolve) => (arrived = resolve));
  const refuse = () => Promise.reject(new ApiError(0, 'preview'));
  const chat = () => previewChat(channel, steps);
  // As the server's event stream would: every event; the widget skips the seqs it has.
  const deliver = () => setTimeout(() => listener && chat().events.forEach((ev) => listener && listener(ev)), 0);
  const api = {
    // Resolved with the draft current when it resumes: a newer one may have come meanwhile.
    channel: () => first.then(() => channel),
    async start() {
      if (channel.open === false) throw new ApiError(409, 'closed', { next_open: channel.next_open, closed: channel.closed });
      steps = { chosen: null, ended: false, at: new Date().toISOString() };
      return { conversation_id: ID, token: ID, conversation: chat().conv };
    },
    get: async () => chat().conv,
    async choice(id, token, optionId) {
      if (!(channel.options || []).some((o) => o.id === optionId)) throw new ApiError(422, 'unknown_option');
      steps = { ...steps, chosen: optionId };
      deliver();
      return { id: ID, state: 'queued', queue_position: 1 };
    },
    async close() {
      steps = { ...steps, ended: true };
      return { id: ID, state: 'ended' };
    },
    send: refuse,
    download: refuse,
    upload: () => ({ promise: refuse(), abort() {} }),
    eventsUrl: () => '',
  };
  return {
    api,
    chat,
    set(next) {
      channel = next;
      arrived();
    },
    connect({ onEvent }) {
      listener = onEvent;
      return { stop: () => (listener = null), send: () => false, nudge() {} };
    },
  };
}
