// Browser storage for one channel key: the visitor token, conversation id,
// last seen event seq, cached durable events (history shown at once after a
// reload), unsent messages and the draft. Everything lives under one
// localStorage entry named after the channel key, so two channels on one
// site never mix. Storage can be unavailable (privacy modes): then the
// widget still works, it only forgets on reload. A `memory` store (preview
// mode) never touches localStorage.

const MAX_EVENTS = 400;

export function createStore(channelKey, memory = false) {
  const name = 'frontdesk:v1:' + channelKey;
  let data = {};
  try {
    data = (!memory && JSON.parse(localStorage.getItem(name) || '{}')) || {};
  } catch (e) {
    data = {};
  }
  // Another tab of the same site wrote: follow it rather than overwrite it.
  addEventListener('storage', (e) => {
    if (memory || e.key !== name) return;
    try {
      data = JSON.parse(e.newValue || '{}') || {};
    } catch (err) {
      data = {};
    }
  });
  function save() {
    if (memory) return;
    try {
      localStorage.setItem(name, JSON.stringify(data));
    } catch (e) {
      // Quota or disabled storage: keep working from memory.
    }
  }
  return {
    get: (k) => data[k],
    set(k, v) {
      data[k] = v;
      save();
    },
    /** Appends a durable event; past MAX_EVENTS the cache is dropped and a reload replays from 0. */
    pushEvent(ev) {
      const list = data.events || (data.events = []);
      if (list.length >= MAX_EVENTS) {
        data.events = [];
        data.truncated = true;
      } else list.push(ev);
      data.lastSeq = ev.seq;
      save();
    },
    /** Forgets the conversation (not the visitor's name/e-mail, kept to prefill the form). */
    clearConversation() {
      data = { profile: data.profile, open: data.open };
      save();
    },
  };
}
