// The conversation's event stream (WebSocket). It authenticates with the
// first frame (the token never goes in the URL), asks for every event after
// the last one it saw, and reconnects with capped exponential backoff and
// full jitter until told to stop. Close codes 4401/4403/4404 are final:
// retrying a bad token, a refused origin or an unknown conversation would
// never succeed. 4409 means a newer tab of the same conversation took this
// socket's place (the gateway keeps a few per conversation): this tab waits,
// without retrying, until it is shown or focused again or the visitor acts.
// The answers to `message` frames (`message_ack`, `message_error`) go to
// `onAnswer`, outside the seq dedupe: an ack's `seq` is its message's, whose
// own event may still be on its way.

const FATAL = { 4401: 'unauthorized', 4403: 'origin_not_allowed', 4404: 'unknown_conversation' };
const SUPERSEDED = 4409;

export function connectEvents({ url, token, since, onEvent, onStatus, onFatal, onAnswer }) {
  let ws = null;
  let attempt = 0;
  let timer = 0;
  let stopped = false;
  let openedAt = 0;
  let lastSeq = since;

  function schedule() {
    if (stopped) return;
    // 0.5 s, 1 s, 2 s … capped at 10 s: a visitor is waiting, and a
    // full jitter spreads a gateway restart's reconnects.
    const cap = Math.min(10000, 500 * 2 ** Math.min(attempt, 5));
    attempt++;
    const delay = Math.floor(Math.random() * cap) + 250;
    clearTimeout(timer);
    timer = setTimeout(open, delay);
  }

  function open() {
    clearTimeout(timer);
    if (stopped) return;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      onStatus(false);
      schedule();
      return;
    }
    ws.onopen = () => {
      openedAt = Date.now();
      ws.send(JSON.stringify({ type: 'auth', token, since: lastSeq }));
      onStatus(true);
    };
    ws.onmessage = (m) => {
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch (e) {
        return;
      }
      if (ev.type === 'message_ack' || ev.type === 'message_error') {
        if (onAnswer) onAnswer(ev);
        return;
      }
      if (typeof ev.seq === 'number') {
        if (ev.seq <= lastSeq) return; // already seen: never shown twice
        lastSeq = ev.seq;
      }
      onEvent(ev);
    };
    ws.onclose = (e) => {
      ws = null;
      if (stopped) return;
      if (FATAL[e.code]) {
        stopped = true;
        onFatal(FATAL[e.code]);
        return;
      }
      if (openedAt && Date.now() - openedAt > 5000) attempt = 0;
      openedAt = 0;
      onStatus(false);
      if (e.code === SUPERSEDED) return; // parked until shown, focused or nudged
      schedule();
    };
    ws.onerror = () => {
      // onclose follows and decides.
    };
  }

  const online = () => {
    if (!ws && !stopped) {
      attempt = 0;
      open();
    }
  };
  const shown = () => {
    if (document.visibilityState === 'visible') online();
  };
  addEventListener('online', online);
  addEventListener('focus', online);
  document.addEventListener('visibilitychange', shown);
  open();

  return {
    /** Sends a frame if connected (the auth frame went first); returns whether it was sent. */
    send(frame) {
      if (!ws || ws.readyState !== 1) return false;
      ws.send(JSON.stringify(frame));
      return true;
    },
    /** Reconnects now (e.g. after a successful REST call proves the gateway is back). */
    nudge: online,
    stop() {
      stopped = true;
      clearTimeout(timer);
      removeEventListener('online', online);
      removeEventListener('focus', online);
      document.removeEventListener('visibilitychange', shown);
      if (ws) ws.close(1000);
      ws = null;
    },
  };
}
