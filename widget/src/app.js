// The controller: bubble, panel and its header, the red band, and the
// conversation's life (channel info, start, resume after a reload, the event
// stream, sending, the chatbot choice, ending, starting again). What an event
// does to the conversation is state.js (pure); each screen is its own module:
// login.js, closed.js, chat.js with tray.js. Plain DOM, no framework: the
// whole widget must stay far below the 30 KB gzip budget. In preview mode
// (the console's channel editor) preview.js stands in for the network: the
// controller renders the draft channel it is handed, and sends nothing.
// A message goes as a `message` frame on the event socket while it is open
// (one frame, not an HTTP request), and by POST when it is not or when the
// socket gave no answer in time: the same client_id either way, so the
// server stores it once.

import { createApi, ApiError } from './api.js';
import { createStore } from './store.js';
import { connectEvents } from './conn.js';
import { pickLanguage, translator } from './i18n.js';
import { h, put, nextId, uuid, icon } from './dom.js';
import { limitsOf } from './limits.js';
import { ENDED, initialState, mergeConversation, applyEvent, addLocal, acked, agentName } from './state.js';
import { loginScreen } from './login.js';
import { closedScreen } from './closed.js';
import { createChat } from './chat.js';
import { createTray } from './tray.js';
import { createPreview } from './preview.js';

const ICON_CHAT = 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 2-2z';
const ICON_X = 'M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z';
const ICON_MIN = 'M5 11h14v2H5z';
// How long a message frame waits for its answer before the POST takes it.
const SOCKET_ANSWER_MS = 10000;

export function mountWidget({ key, base, lang: explicitLang, css, preview }) {
  const demo = preview ? createPreview() : null;
  const api = demo ? demo.api : createApi(base);
  const store = createStore(key, !!demo);
  let pageLang = document.documentElement.lang;
  let lang = pickLanguage(explicitLang, pageLang, null);
  let t = translator(lang);

  let channel = null;
  let channelAt = 0;
  let channelErr = null;
  let cs = initialState(null); // the conversation (state.js)
  let convId = null;
  let token = null;
  let conn = null;
  let isOpen = false;
  let view = 'loading';
  let readSent = 0;
  let myTyping = 0;
  const answers = new Map(); // client_id -> settle(answer | null) of a message frame in flight
  const errors = new Map(); // source -> text shown in the red band
  const limits = () => limitsOf(channel);

  // ---------------------------------------------------------------- skeleton
  const host = document.createElement('frontdesk-widget');
  const shadow = host.attachShadow({ mode: 'open' });
  const ids = { panel: nextId('panel'), title: nextId('title'), q: nextId('q'), unread: nextId('unread') };
  const badge = h('span', { class: 'badge', id: ids.unread, hidden: true });
  const bubble = h('button', { class: 'bubble', type: 'button', 'aria-expanded': 'false', 'aria-controls': ids.panel, onclick: () => (isOpen ? close() : open()) }, icon(ICON_CHAT), badge);
  let unread = 0;
  function setUnread(n) {
    unread = n;
    badge.hidden = !n;
    badge.textContent = n ? t('unread', { n }) : '';
    if (n) bubble.setAttribute('aria-describedby', ids.unread);
    else bubble.removeAttribute('aria-describedby');
  }
  const title = h('h2', { class: 'title', id: ids.title, tabindex: '-1' });
  const endBtn = h('button', { class: 'icon', type: 'button', hidden: true, onclick: askEnd }, icon(ICON_X));
  const minBtn = h('button', { class: 'icon', type: 'button', onclick: () => close() }, icon(ICON_MIN));
  const band = h('div', { class: 'band', role: 'alert' });
  const confirmText = h('p', { id: ids.q });
  const yesBtn = h('button', { class: 'btn', type: 'button', onclick: endChat });
  const noBtn = h('button', { class: 'btn2', type: 'button', onclick: cancelEnd });
  const confirmBox = h('div', { class: 'confirm', role: 'group', 'aria-labelledby': ids.q, hidden: true }, confirmText, yesBtn, noBtn);
  const body = h('div', { class: 'body' });
  const live = h('div', { class: 'sr', 'aria-live': 'polite' });
  const panel = h('section', { class: 'panel', id: ids.panel, role: 'dialog', 'aria-labelledby': ids.title, hidden: true, onkeydown: onPanelKey },
    h('div', { class: 'head' }, title, endBtn, minBtn), band, confirmBox, body, live);
  // A constructed stylesheet is not an inline <style>, so a host page's strict
  // CSP (style-src without 'unsafe-inline') does not block it.
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    shadow.adoptedStyleSheets = [sheet];
  } catch (e) {
    shadow.append(h('style', { text: css }));
  }
  shadow.append(h('div', { class: 'root', lang }, panel, bubble));

  // Screens get the current texts, language and limits through getters.
  const tray = createTray({
    t: () => t,
    lang: () => lang,
    limits,
    setError: (text) => setError('file', text),
    errorText,
    upload: (file, batch, id, onProgress) => api.upload(convId, token, file, batch, id, onProgress),
    sent(m, file) {
      onEvent({ type: 'message', message: m }, false);
      announce(t('fileSent', { name: file.name }));
    },
    focusComposer: () => chat.composer.focus(),
  });
  const chat = createChat({
    t: () => t,
    lang: () => lang,
    state: () => cs,
    channel: () => channel,
    draft: () => store.get('draft'),
    typed: onDraft,
    send: sendDraft,
    post,
    choose,
    restart,
    download,
  }, tray);

  function relabel() {
    shadow.querySelector('.root').setAttribute('lang', lang);
    bubble.setAttribute('aria-label', t(isOpen ? 'closeWidget' : 'open'));
    endBtn.setAttribute('aria-label', t('end'));
    endBtn.title = t('end');
    minBtn.setAttribute('aria-label', t('minimize'));
    minBtn.title = t('minimize');
    confirmText.textContent = t('confirmEnd');
    yesBtn.textContent = t('yes');
    noBtn.textContent = t('no');
    chat.relabel();
    title.textContent = (channel && channel.name) || 'Chat';
  }

  // ------------------------------------------------------------------ errors
  function setError(source, text) {
    errors.delete(source);
    if (text) errors.set(source, text);
    // Every active problem is listed, oldest first, each with its guidance.
    const texts = [...new Set(errors.values())];
    put(band, texts.map((text) => h('p', { text })));
  }

  function errorText(e) {
    const b = e.body || {};
    switch (e.code) {
      case 'network':
        return t('errOffline');
      case 'rate_limited':
        return t('errRate', { n: b.retry_after || 30 });
      case 'origin_not_allowed':
        return t('errOrigin');
      case 'unauthorized':
      case 'unknown_conversation':
        return t('errAuth');
      case 'conversation_ended':
        return t('errEnded');
      case 'unknown_channel':
        return t('errChannel');
      case 'too_long':
        return t('tooLong', { n: b.limit || limits().max_message_chars });
      case 'empty_message':
        return t('errEmptyMessage');
      case 'queue_full':
        return t('errQueueFull');
      case 'too_many_waiting':
        return t('errTooManyWaiting');
      default:
        return t('errServer');
    }
  }

  // ----------------------------------------------------------- open / close
  async function open(focus = true) {
    isOpen = true;
    panel.hidden = false;
    bubble.setAttribute('aria-expanded', 'true');
    relabel();
    store.set('open', true);
    setUnread(0);
    if (!convId && (!channel || Date.now() - channelAt > 60000)) {
      if (!channel) show('loading');
      await loadChannel();
    }
    if (!convId) show(channel && channel.open === false ? 'closed' : channel ? 'login' : 'error');
    if (focus) focusInside();
    markRead();
  }

  function close() {
    isOpen = false;
    panel.hidden = true;
    bubble.setAttribute('aria-expanded', 'false');
    relabel();
    store.set('open', false);
    bubble.focus();
  }

  function onPanelKey(e) {
    if (e.key !== 'Escape') return;
    e.preventDefault();
    if (!confirmBox.hidden) cancelEnd();
    else close();
  }

  function focusInside() {
    const target =
      (view === 'chat' && !chat.composerBox.hidden && chat.composer) ||
      body.querySelector('input, button:not([disabled]), a[href], textarea') ||
      title;
    target.focus();
  }

  async function loadChannel() {
    try {
      channel = await api.channel(key);
      channelAt = Date.now();
      channelErr = null;
      lang = pickLanguage(explicitLang, pageLang, channel);
      t = translator(lang);
      setError('channel', null);
      relabel();
    } catch (e) {
      channelErr = e;
      setError('channel', errorText(e));
    }
  }

  // ---------------------------------------------------------------- screens
  function show(next, extra) {
    view = next;
    const ended = !cs.conv || ENDED.includes(cs.conv.state);
    endBtn.hidden = next !== 'chat' || ended;
    if (next === 'chat') {
      if (body.firstChild !== chat.view) put(body, chat.view);
      if (chat.update().ended) confirmBox.hidden = true;
      return;
    }
    confirmBox.hidden = true;
    if (next === 'loading') put(body, h('p', { class: 'pad muted', text: t('loading') }));
    else if (next === 'login') put(body, loginScreen({ t, limits: limits(), profile: store.get('profile') || {}, start: startChat, failed: startFailed }));
    else if (next === 'closed') put(body, closedScreen(extra || channel || {}, lang, t));
    else put(body, h('div', { class: 'pad' }, h('p', { text: channelErr ? errorText(channelErr) : t('errServer') }), h('button', { class: 'btn', type: 'button', text: t('retry'), onclick: () => open() })));
  }

  async function startChat(profile) {
    const r = await api.start(key, { name: profile.name, email: profile.email, page_url: location.href, language: lang });
    store.set('profile', profile);
    setError('start', null);
    begin(r.conversation_id, r.token, r.conversation, true);
  }

  function startFailed(err) {
    if (err.code !== 'closed') return setError('start', errorText(err));
    channel = Object.assign({}, channel, { open: false, next_open: err.body.next_open, closed: err.body.closed || (channel && channel.closed) });
    show('closed');
    focusInside();
  }

  // ---------------------------------------------------------- conversation
  function begin(id, tok, c, fresh) {
    convId = id;
    token = tok;
    cs = initialState(c);
    if (fresh) {
      for (const k of ['events', 'pending']) store.set(k, []);
      store.set('lastSeq', 0);
      store.set('conv', { id, token: tok, state: c });
    }
    show('chat');
    if (isOpen) focusInside();
    connect(fresh ? 0 : store.get('lastSeq') || 0);
  }

  function dropConn() {
    if (conn) conn.stop();
    conn = null;
    unanswered();
  }

  function connect(since) {
    dropConn();
    if (cs.conv && ENDED.includes(cs.conv.state)) return;
    cs = { ...cs, seq: Math.max(cs.seq, since) };
    conn = (demo ? demo.connect : connectEvents)({
      url: api.eventsUrl(convId),
      token,
      since,
      onEvent: (ev) => onEvent(ev, false),
      onAnswer: (ev) => settle(ev.client_id, ev),
      onStatus: (up) => {
        if (!up) unanswered();
        setError('conn', up ? null : t('errConn'));
        if (up) markRead();
        if (up && errors.has('send')) setError('send', t('errRetry'));
      },
      onFatal: (code) => {
        conn = null;
        unanswered();
        setError('conn', null);
        if (code === 'origin_not_allowed') return setError('fatal', t('errOrigin'));
        forget();
        setError('fatal', t('errAuth'));
        show(channel && channel.open === false ? 'closed' : 'login');
      },
    });
  }

  function resume() {
    const saved = store.get('conv');
    if (!saved || !saved.id || !saved.token) return;
    const cached = store.get('truncated') ? [] : store.get('events') || [];
    convId = saved.id;
    token = saved.token;
    cs = initialState(saved.state || { state: 'queued' });
    for (const p of store.get('pending') || []) {
      cs = addLocal(cs, p);
      chat.message(cs.messages[cs.messages.length - 1], true);
    }
    if (cs.messages.length) setError('send', t('errRetry'));
    for (const ev of cached) onEvent(ev, true);
    show('chat');
    const since = cached.length ? cached[cached.length - 1].seq : 0;
    if (!cached.length) store.set('events', []);
    store.set('truncated', false);
    // Fresh state (agent, queue position, options) from the server; the event
    // stream fills in whatever happened while the page was away.
    api.get(convId, token).then(
      (c) => {
        cs = mergeConversation(cs, c);
        saveConv();
        show('chat');
      },
      (e) => {
        if (e.code === 'unauthorized' || e.code === 'unknown_conversation') {
          dropConn();
          forget();
          setError('fatal', t('errAuth'));
          loadChannel().then(() => show(channel && channel.open === false ? 'closed' : 'login'));
        }
      },
    );
    connect(since);
  }

  function saveConv() {
    store.set('conv', { id: convId, token, state: cs.conv });
  }

  function forget() {
    store.clearConversation();
    convId = token = null;
    cs = initialState(null);
    readSent = 0;
    chat.clear();
  }

  /** Applies an event (state.js), then shows what it changed. */
  function onEvent(ev, replay) {
    const prev = cs;
    cs = applyEvent(cs, ev);
    if (cs === prev) return; // seen already
    if (cs.seq !== prev.seq && !replay) store.pushEvent(ev);
    switch (ev.type) {
      case 'message': {
        const m = cs.messages.find((x) => !prev.messages.includes(x));
        if (m) gotMessage(m, replay);
        break;
      }
      case 'agent_joined':
      case 'agent_left': {
        const n = cs.notes[cs.notes.length - 1];
        const text = t(n.kind, { name: n.name || t('agent') });
        chat.note(text, n.seq);
        if (!replay) announce(text);
        break;
      }
      case 'receipt':
        chat.paintAll();
        break;
      case 'closed':
        dropConn();
        setError('conn', null);
        break;
      case 'typing':
        chat.typing(cs.typing);
        return;
    }
    if (!replay) saveConv();
    if (view === 'chat') show('chat');
  }

  function gotMessage(m, replay) {
    chat.message(m);
    if (m.client_id) dropPending(m.client_id);
    if (m.client_id && m.sender === 'visitor') settle(m.client_id, { type: 'message_ack', seq: m.seq });
    if (m.sender === 'visitor') return;
    if (!replay && !isOpen) setUnread(unread + 1);
    if (!replay) announce(t('newMessage', { name: m.author || (m.sender === 'agent' ? agentName(cs) || t('agent') : (channel && channel.name) || ''), text: m.body }));
    markRead();
  }

  function announce(text) {
    live.textContent = text;
  }

  function markRead() {
    if (!isOpen || document.hidden || !conn || cs.seq <= readSent) return;
    if (conn.send({ type: 'read', up_to_seq: cs.seq })) readSent = cs.seq;
  }
  document.addEventListener('visibilitychange', markRead);

  // ----------------------------------------------------------------- sending
  function pending() {
    return store.get('pending') || [];
  }
  function dropPending(clientId) {
    const list = pending();
    const rest = list.filter((p) => p.client_id !== clientId);
    if (rest.length !== list.length) store.set('pending', rest);
  }

  function onDraft(text) {
    store.set('draft', text);
    if (!conn) return;
    if (!myTyping) conn.send({ type: 'typing', state: 'composing' });
    clearTimeout(myTyping);
    myTyping = setTimeout(stopTyping, 4000);
  }
  function stopTyping() {
    if (myTyping && conn) conn.send({ type: 'typing', state: 'paused' });
    clearTimeout(myTyping);
    myTyping = 0;
  }

  function sendDraft() {
    const composer = chat.composer;
    const text = composer.value;
    if (!convId) return;
    if (demo) return setError('send', t('previewNote'));
    tray.sendAll();
    if (!text.trim()) return;
    const max = limits().max_message_chars;
    if (text.length > max) return setError('send', t('tooLong', { n: max }));
    const p = { client_id: uuid(), body: text, created_at: new Date().toISOString() };
    store.set('pending', pending().concat(p));
    composer.value = '';
    store.set('draft', '');
    stopTyping();
    cs = addLocal(cs, p);
    post(chat.message(cs.messages[cs.messages.length - 1]));
    composer.focus();
  }

  /**
   * Sends `p` as a `message` frame if the event socket is open; resolves with
   * its answer (`message_ack`, `message_error`, or the message's own event as
   * an ack), or null when it was not sent, got no answer within
   * SOCKET_ANSWER_MS, or the socket closed first: then the POST takes it.
   */
  function viaSocket(p) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(p.client_id, null), SOCKET_ANSWER_MS);
      answers.set(p.client_id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      if (!conn || !conn.send({ type: 'message', client_id: p.client_id, body: p.body })) settle(p.client_id, null);
    });
  }
  function settle(clientId, answer) {
    const done = answers.get(clientId);
    answers.delete(clientId);
    if (done) done(answer);
  }
  /** The socket is gone: its unanswered frames go by POST. */
  function unanswered() {
    for (const id of [...answers.keys()]) settle(id, null);
  }

  /** Sends (or retries) an unsent message; its client_id makes a retry safe. */
  async function post(it) {
    if (it.busy || it.msg.seq) return;
    it.busy = true;
    it.failed = false;
    chat.paint(it);
    if (conn) conn.nudge(); // the visitor acts: try the stream now, not at the next backoff step
    const p = it.msg;
    try {
      const answer = await viaSocket(p);
      if (answer && answer.type === 'message_error') throw new ApiError(0, answer.error, answer);
      const m = answer ? acked(p, answer) : await api.send(convId, token, p.client_id, p.body);
      it.busy = false;
      onEvent({ type: 'message', message: m }, false);
      setError('send', null);
      if (conn) conn.nudge();
    } catch (e) {
      it.busy = false;
      if (it.msg.seq) return; // the event stream acknowledged it meanwhile
      it.failed = true;
      chat.paint(it);
      if (e.code === 'conversation_ended') {
        cs = applyEvent(cs, { type: 'state', state: 'ended' });
        show('chat');
      }
      setError('send', e.code === 'network' ? t('errSend') : errorText(e));
    }
  }

  async function download(a) {
    try {
      const blob = await api.download(convId, token, a.id);
      const url = URL.createObjectURL(blob);
      const link = h('a', { href: url, download: a.name, hidden: true });
      shadow.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      setError('download', null);
    } catch (e) {
      setError('download', errorText(e));
    }
  }

  async function choose(optionId) {
    chat.lockOptions(true);
    try {
      cs = mergeConversation(cs, await api.choice(convId, token, optionId));
      saveConv();
      setError('choice', null);
      show('chat');
      if (isOpen && !chat.composerBox.hidden) chat.composer.focus();
    } catch (e) {
      chat.lockOptions(false);
      setError('choice', errorText(e));
    }
  }

  // -------------------------------------------------------------- ending
  function askEnd() {
    confirmBox.hidden = false;
    yesBtn.focus();
  }
  function cancelEnd() {
    confirmBox.hidden = true;
    endBtn.focus();
  }
  async function endChat() {
    try {
      const c = await api.close(convId, token);
      cs = { ...mergeConversation(cs, { ...c, state: c.state || 'ended' }), endedBy: 'visitor' };
      dropConn();
      setError('conn', null);
      setError('end', null);
      saveConv();
      show('chat');
      chat.restartBtn.focus();
    } catch (e) {
      setError('end', errorText(e));
    }
  }

  async function restart() {
    const profile = store.get('profile');
    forget();
    for (const k of ['fatal', 'send', 'end', 'choice']) setError(k, null);
    show('loading');
    await loadChannel();
    if (!channel) return show('error');
    if (channel.open === false || !profile) {
      show(channel.open === false ? 'closed' : 'login');
      return focusInside();
    }
    try {
      await startChat(profile);
    } catch (e) {
      if (e.code === 'closed') {
        channel.open = false;
        show('closed', Object.assign({}, channel, e.body));
      } else {
        show('login');
        setError('start', errorText(e));
      }
    }
    focusInside();
  }

  // ---------------------------------------------------------------- preview
  /**
   * A new draft (preview mode): the same screen again, drawn from it. The
   * preview chat is rebuilt from the draft (a changed welcome text shows),
   * or forgotten when the draft no longer fits it (closed, another mode).
   */
  function showDraft(draft, visitorPageLang) {
    if (visitorPageLang !== undefined) pageLang = visitorPageLang;
    const before = channel;
    demo.set(draft);
    if (!before) return; // the first: loadChannel takes it
    channel = draft;
    channelAt = Date.now();
    lang = pickLanguage(explicitLang, pageLang, channel);
    t = translator(lang);
    relabel();
    if (convId && (channel.open === false || channel.mode !== before.mode)) {
      dropConn();
      forget();
    }
    setError('send', null);
    if (convId) {
      const { conv, events } = demo.chat();
      chat.clear();
      cs = initialState(conv);
      for (const ev of events) onEvent(ev, true);
    }
    show(convId ? 'chat' : channel.open === false ? 'closed' : 'login');
  }

  // ------------------------------------------------------------------ start
  relabel();
  (document.body || document.documentElement).append(host);
  resume();
  const ready = loadChannel().then(() => {
    if (view === 'chat') show('chat');
    else if (isOpen) open(false);
  });
  if (store.get('open') || demo) open(false);
  return { open: () => ready.then(() => open()), close, host, preview: demo ? showDraft : null };
}
