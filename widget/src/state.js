// The conversation as the widget knows it, and how each server event changes
// it (docs/visitor-api.md, "Events"). Pure: no DOM, no storage, no network
// and no texts, so it is unit-tested in node (test/state.test.mjs). The
// controller (app.js) applies an event, then renders what changed. No
// function here mutates its input; an ignored event returns the same state.

export const ENDED = ['ended', 'closed_out_of_hours'];

/**
 * The state:
 *   conv      the Conversation (REST shape) or null; `state` kept current
 *   agent     the agent in the chat ({ name }) or null
 *   queue     queue position or null
 *   endedBy   who ended it ('visitor' | 'agent' | 'system') or null
 *   seq       highest event seq applied: an event at or below it is ignored
 *   receipts  { delivered, read }: visitor messages up to that seq are so marked
 *   typing    the agent is typing
 *   messages  Messages ordered by seq; unsent ones (no seq yet) last, as typed
 *   notes     [{ seq, kind: 'joined' | 'left', name }] (name may be null)
 */
export function initialState(conv) {
  return {
    conv: conv || null,
    agent: (conv && conv.agent) || null,
    queue: conv && conv.queue_position != null ? conv.queue_position : null,
    endedBy: null,
    seq: 0,
    receipts: { delivered: 0, read: 0 },
    typing: false,
    messages: [],
    notes: [],
  };
}

/** Fresh Conversation fields from a REST answer (get, choice, close); agent and queue only when it names them. */
export function mergeConversation(state, c) {
  const next = { ...state, conv: { ...state.conv, ...c } };
  if (c.agent) next.agent = c.agent;
  if (c.queue_position != null) next.queue = c.queue_position;
  return next;
}

/** One event from the stream, or `{ type: 'message', message }` for a Message a REST call returned. */
export function applyEvent(state, ev) {
  const durable = typeof ev.seq === 'number';
  if (durable && ev.seq <= state.seq) return state; // already applied: never twice
  const next = durable ? { ...state, seq: ev.seq } : { ...state };
  const setState = (s) => (next.conv = { ...state.conv, state: s });
  switch (ev.type) {
    case 'message': {
      const m = { ...ev.message, seq: ev.message.seq || ev.seq };
      next.messages = putMessage(state.messages, m);
      if (next.messages !== state.messages && m.sender !== 'visitor') next.typing = false;
      break;
    }
    case 'state':
      setState(ev.state);
      if (ev.state === 'queued') next.agent = null;
      break;
    case 'queue_position':
      next.queue = ev.position;
      break;
    case 'agent_joined':
      next.agent = ev.agent || {};
      setState('active');
      next.notes = state.notes.concat({ seq: ev.seq, kind: 'joined', name: next.agent.name || null });
      break;
    case 'agent_left':
      next.notes = state.notes.concat({ seq: ev.seq, kind: 'left', name: (ev.agent && ev.agent.name) || agentName(state) });
      next.agent = null;
      setState('queued');
      break;
    case 'receipt': {
      const r = { ...state.receipts };
      r[ev.status] = Math.max(r[ev.status] || 0, ev.up_to_seq);
      if (ev.status === 'read') r.delivered = Math.max(r.delivered, ev.up_to_seq);
      next.receipts = r;
      break;
    }
    case 'closed':
      setState('ended');
      next.endedBy = ev.by || null;
      break;
    case 'typing':
      next.typing = ev.state === 'composing';
      break;
    default:
      // Unknown durable events still count as seen; others change nothing.
      return durable ? next : state;
  }
  return next;
}

/** A message the visitor typed that the server has not acknowledged yet. */
export function addLocal(state, p) {
  return { ...state, messages: putMessage(state.messages, { client_id: p.client_id, body: p.body, created_at: p.created_at, sender: 'visitor' }) };
}

/**
 * Adds or completes a message: an unsent one with the same client_id (or one
 * with the same id) is replaced by the server's; one already acknowledged
 * (with a seq) is never replaced, so nothing is shown twice, except that
 * one the socket acknowledged (a seq but no id yet: see `acked`) takes the
 * server's fields when its message arrives.
 */
function putMessage(list, m) {
  const i = list.findIndex((x) => (m.client_id && x.client_id === m.client_id) || (m.id && x.id === m.id));
  if (i >= 0 && list[i].seq && (list[i].id || !m.id || m.seq !== list[i].seq)) return list;
  const merged = i >= 0 ? { ...list[i], ...m } : m;
  const rest = i >= 0 ? list.filter((_, j) => j !== i) : list;
  const at = merged.seq ? rest.findIndex((x) => !x.seq || x.seq > merged.seq) : -1;
  return at < 0 ? rest.concat(merged) : [...rest.slice(0, at), merged, ...rest.slice(at)];
}

/**
 * The Message a `message_ack` stands for until the server's own arrives
 * (as the `message` event): the typed one `p` with the ack's seq.
 */
export function acked(p, ack) {
  return { client_id: p.client_id, body: p.body, created_at: p.created_at, sender: 'visitor', seq: ack.seq };
}

export const agentName = (state) => (state.agent && state.agent.name) || null;

/** A visitor message's mark: 'sending' (no seq yet), 'sent', 'delivered' or 'read'. */
export function statusOf(state, m) {
  if (!m.seq) return 'sending';
  if (state.receipts.read >= m.seq) return 'read';
  return state.receipts.delivered >= m.seq ? 'delivered' : 'sent';
}

/** What the chat screen shows for this state: the ended box, the chatbot menu (with its options), the waiting line. */
export function screenOf(state, channel) {
  const st = state.conv ? state.conv.state : 'queued';
  const ended = ENDED.includes(st);
  const menu = st === 'chatbot_menu' || (st === 'started' && !!channel && channel.mode === 'chatbot');
  const c = state.conv || {};
  return {
    ended,
    menu,
    waiting: !ended && !menu && ['queued', 'offered', 'started'].includes(st),
    outOfHours: st === 'closed_out_of_hours',
    options: menu ? (c.options && c.options.length ? c.options : (channel && channel.options) || []) : [],
  };
}
