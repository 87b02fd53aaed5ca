// The widget itself: bubble, panel and every screen (login, chatbot menu,
// waiting, chat, out of hours, ended), driven by the visitor API and the
// conversation's event stream. One controller, plain DOM, no framework: the
// whole thing must stay far below the 30 KB gzip budget.

import { createApi } from './api.js';
import { createStore } from './store.js';
import { connectEvents } from './conn.js';
import { pickLanguage, translator, formatWhen, formatTime, formatSize } from './i18n.js';
import { h, put, linkify, alternativeHref, nextId, uuid } from './dom.js';
import { review } from './files.js';

const svg = (d) => {
  const s = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('aria-hidden', 'true');
  s.setAttribute('focusable', 'false');
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', d);
  s.append(p);
  return s;
};
const ICON_CHAT = 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 2-2z';
const ICON_X = 'M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z';
const ICON_MIN = 'M5 11h14v2H5z';
const ICON_CLIP = 'M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z';
const ICON_DOWN = 'M5 20h14v-2H5zM19 9h-4V3H9v6H5l7 7z';
const EMAIL_RE = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
const ENDED = ['ended', 'closed_out_of_hours'];

export function mountWidget({ key, base, lang: explicitLang, css }) {
  const api = createApi(base);
  const store = createStore(key);
  const pageLang = document.documentElement.lang;
  let lang = pickLanguage(explicitLang, pageLang, null);
  let t = translator(lang);

  let channel = null;
  let channelAt = 0;
  let channelErr = null;
  let conv = null; // latest Conversation object
  let convId = null;
  let token = null;
  let conn = null;
  let isOpen = false;
  let view = 'loading';
  let agentName = null;
  let queuePos = null;
  let endedBy = null;
  let maxSeenSeq = 0;
  let readSent = 0;
  let typingOff = 0;
  let myTyping = 0;
  const receipts = { delivered: 0, read: 0 };
  const items = new Map(); // client_id or id -> message item
  const tray = []; // files picked and not yet sent: { file, id, batch, state, progress, up, node }
  const errors = new Map(); // source -> text shown in the red band

  // ---------------------------------------------------------------- skeleton
  const host = document.createElement('frontdesk-widget');
  const shadow = host.attachShadow({ mode: 'open' });
  const ids = { panel: nextId('panel'), title: nextId('title'), q: nextId('q') };
  ids.unread = nextId('unread');
  const badge = h('span', { class: 'badge', id: ids.unread, hidden: true });
  const bubble = h('button', { class: 'bubble', type: 'button', 'aria-expanded': 'false', 'aria-controls': ids.panel, onclick: () => (isOpen ? close() : open()) }, svg(ICON_CHAT), badge);
  let unread = 0;
  function setUnread(n) {
    unread = n;
    badge.hidden = !n;
    badge.textContent = n ? t('unread', { n }) : '';
    if (n) bubble.setAttribute('aria-describedby', ids.unread);
    else bubble.removeAttribute('aria-describedby');
  }
  const title = h('h2', { class: 'title', id: ids.title, tabindex: '-1' });
  const endBtn = h('button', { class: 'icon', type: 'button', hidden: true, onclick: askEnd }, svg(ICON_X));
  const minBtn = h('button', { class: 'icon', type: 'button', onclick: () => close() }, svg(ICON_MIN));
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

  // Chat screen parts are built once so focus, scroll and draft survive updates.
  const log = h('ol', { class: 'log', tabindex: '0' });
  const status = h('p', { class: 'status wait', role: 'status' });
  const typingLine = h('p', { class: 'status', 'aria-hidden': 'true' });
  const optionsPrompt = h('p', { id: nextId('topic') });
  const optionsList = h('div', { class: 'choices' });
  const options = h('div', { class: 'options', role: 'group', 'aria-labelledby': optionsPrompt.id }, optionsPrompt, optionsList);
  const composer = h('textarea', { rows: '2', oninput: onDraft, onkeydown: onComposerKey });
  const sendBtn = h('button', { class: 'btn', type: 'button', onclick: sendDraft });
  const fileInput = h('input', { type: 'file', multiple: true, hidden: true, tabindex: '-1', 'aria-hidden': 'true', onchange: onPick });
  const attachBtn = h('button', { class: 'clip', type: 'button', onclick: () => fileInput.click() }, svg(ICON_CLIP));
  const trayList = h('ul', { class: 'tray' });
  const composerBox = h('div', { class: 'composer' }, attachBtn, fileInput, composer, sendBtn);
  const endedText = h('p', { class: 'muted' });
  const endedInfo = h('div');
  const restartBtn = h('button', { class: 'btn', type: 'button', onclick: restart });
  const endedBox = h('div', { class: 'ended' }, endedText, endedInfo, restartBtn);
  const chatView = h('div', { class: 'chat' }, log, status, typingLine, options, trayList, composerBox, endedBox);

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
    log.setAttribute('aria-label', t('messages'));
    optionsPrompt.textContent = t('chooseTopic');
    composer.setAttribute('aria-label', t('message'));
    composer.placeholder = t('message');
    sendBtn.textContent = t('send');
    attachBtn.setAttribute('aria-label', t('attach'));
    attachBtn.title = t('attach');
    trayList.setAttribute('aria-label', t('filesToSend'));
    for (const f of tray) paintFile(f);
    restartBtn.textContent = t('startNew');
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
    switch (e.code) {
      case 'network':
        return t('errOffline');
      case 'rate_limited':
        return t('errRate', { n: (e.body && e.body.retry_after) || 30 });
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
        return t('tooLong', { n: (e.body && e.body.limit) || 4000 });
      case 'empty_message':
        return t('errEmptyMessage');
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
      (view === 'chat' && !composerBox.hidden && composer) ||
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
    endBtn.hidden = !(next === 'chat' && conv && !ENDED.includes(conv.state));
    if (next === 'chat') {
      if (body.firstChild !== chatView) put(body, chatView);
      updateChat();
      return;
    }
    confirmBox.hidden = true;
    if (next === 'loading') put(body, h('p', { class: 'pad muted', text: t('loading') }));
    else if (next === 'login') put(body, loginScreen());
    else if (next === 'closed') put(body, closedScreen(extra || channel || {}));
    else put(body, h('div', { class: 'pad' }, h('p', { text: channelErr ? errorText(channelErr) : t('errServer') }), h('button', { class: 'btn', type: 'button', text: t('retry'), onclick: () => open() })));
  }

  function loginScreen() {
    const profile = store.get('profile') || {};
    const nameId = nextId('name');
    const emailId = nextId('email');
    const warnId = nextId('warn');
    const max = (channel && channel.limits && channel.limits.max_name_chars) || 100;
    const name = h('input', { id: nameId, type: 'text', autocomplete: 'name', maxlength: String(max), value: profile.name || '' });
    const email = h('input', { id: emailId, type: 'email', autocomplete: 'email', maxlength: '254', value: profile.email || '' });
    const warn = h('p', { class: 'warn', id: warnId, role: 'alert' });
    const submit = h('button', { class: 'btn', type: 'submit', text: t('start') });
    const say = (text, field) => {
      warn.textContent = text;
      for (const f of [name, email]) f.removeAttribute('aria-invalid');
      if (field) {
        field.setAttribute('aria-invalid', 'true');
        field.setAttribute('aria-describedby', warnId);
        field.focus();
      }
    };
    const form = h('form', {
      class: 'pad',
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        const n = name.value.trim();
        const m = email.value.trim();
        if (!n || !m) return say(t('empty'), !n ? name : email);
        if (!EMAIL_RE.test(m)) return say(t('invalidEmail'), email);
        say('');
        submit.disabled = true;
        try {
          const r = await api.start(key, { name: n, email: m, page_url: location.href, language: lang });
          store.set('profile', { name: n, email: m });
          setError('start', null);
          begin(r.conversation_id, r.token, r.conversation, true);
        } catch (err) {
          submit.disabled = false;
          const field = err.body && err.body.field === 'email' ? email : name;
          if (err.code === 'empty_field') say(t('empty'), field);
          else if (err.code === 'invalid_email') say(t('invalidEmail'), email);
          else if (err.code === 'too_long') say(t('tooLong', { n: err.body.limit || max }), field);
          else if (err.code === 'closed') {
            channel = Object.assign({}, channel, { open: false, next_open: err.body.next_open, closed: err.body.closed || (channel && channel.closed) });
            show('closed');
            focusInside();
          } else setError('start', errorText(err));
        }
      },
    },
    h('p', { text: t('intro') }),
    h('div', null, h('label', { for: nameId, text: t('name') }), name),
    h('div', null, h('label', { for: emailId, text: t('email') }), email),
    warn,
    submit);
    return form;
  }

  function closedScreen(info) {
    const closed = info.closed || {};
    const alts = (closed.alternatives || [])
      .map((alt) => {
        const href = alternativeHref(alt);
        const text = (alt.label ? alt.label + ' : ' : '') + alt.value;
        return h('li', null, href ? h('a', { href, text: lang === 'fr' ? text : text.replace(' : ', ': '), target: alt.kind === 'link' ? '_blank' : null, rel: 'noopener noreferrer' }) : text);
      });
    // The admin's text may place the next opening time itself with
    // `{next_open}`; otherwise it gets its own line.
    const when = info.next_open ? formatWhen(lang, info.next_open) : '';
    const text = closed.text || t('closedDefault');
    const inline = text.includes('{next_open}');
    return h('div', { class: 'pad' },
      h('h3', { text: t('closedTitle') }),
      h('p', { class: inline && when ? 'next' : null, text: inline ? text.split('{next_open}').join(when || '—').trim() : text }),
      when && !inline ? h('p', { class: 'next', text: t('nextOpen', { when }) }) : null,
      alts.length ? [h('h4', { text: t('otherWays') }), h('ul', { class: 'alts' }, alts)] : null);
  }

  // ---------------------------------------------------------- conversation
  function begin(id, tok, c, fresh) {
    convId = id;
    token = tok;
    conv = c;
    agentName = c && c.agent ? c.agent.name : null;
    queuePos = c ? c.queue_position : null;
    if (fresh) {
      for (const k of ['events', 'pending']) store.set(k, []);
      store.set('lastSeq', 0);
      store.set('conv', { id, token: tok, state: c });
    }
    show('chat');
    if (isOpen) focusInside();
    connect(fresh ? 0 : store.get('lastSeq') || 0);
  }

  function connect(since) {
    if (conn) conn.stop();
    if (conv && ENDED.includes(conv.state)) return;
    maxSeenSeq = Math.max(maxSeenSeq, since);
    conn = connectEvents({
      url: api.eventsUrl(convId),
      token,
      since,
      onEvent: (ev) => onEvent(ev, false),
      onStatus: (up) => {
        setError('conn', up ? null : t('errConn'));
        if (up) markRead();
        if (up && errors.has('send')) setError('send', t('errRetry'));
      },
      onFatal: (code) => {
        conn = null;
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
    if (!saved || !saved.id || !saved.token) return false;
    const cached = store.get('truncated') ? [] : store.get('events') || [];
    convId = saved.id;
    token = saved.token;
    conv = saved.state || { state: 'queued' };
    agentName = conv.agent ? conv.agent.name : null;
    queuePos = conv.queue_position;
    for (const p of store.get('pending') || []) addLocal(p, true);
    if (items.size) setError('send', t('errRetry'));
    for (const ev of cached) onEvent(ev, true);
    show('chat');
    const since = cached.length ? cached[cached.length - 1].seq : 0;
    if (!cached.length) store.set('events', []);
    store.set('truncated', false);
    // Fresh state (agent, queue position, options) from the server; the event
    // stream fills in whatever happened while the page was away.
    api.get(convId, token).then(
      (c) => {
        conv = Object.assign(conv, c);
        if (c.agent) agentName = c.agent.name;
        if (c.queue_position != null) queuePos = c.queue_position;
        saveConv();
        show('chat');
      },
      (e) => {
        if (e.code === 'unauthorized' || e.code === 'unknown_conversation') {
          if (conn) conn.stop();
          conn = null;
          forget();
          setError('fatal', t('errAuth'));
          loadChannel().then(() => show(channel && channel.open === false ? 'closed' : 'login'));
        }
      },
    );
    connect(since);
    return true;
  }

  function saveConv() {
    store.set('conv', { id: convId, token, state: conv });
  }

  function forget() {
    store.clearConversation();
    convId = token = conv = null;
    agentName = queuePos = endedBy = null;
    maxSeenSeq = readSent = 0;
    receipts.delivered = receipts.read = 0;
    items.clear();
    log.replaceChildren();
    for (const f of tray.splice(0)) if (f.up) f.up.abort();
    trayList.replaceChildren();
    composer.value = '';
  }

  function onEvent(ev, replay) {
    if (typeof ev.seq === 'number') {
      if (ev.seq <= maxSeenSeq && !replay) return;
      maxSeenSeq = Math.max(maxSeenSeq, ev.seq);
      if (!replay) store.pushEvent(ev);
    }
    switch (ev.type) {
      case 'message':
        addMessage(Object.assign({}, ev.message, { seq: ev.message.seq || ev.seq }), replay);
        break;
      case 'state':
        conv.state = ev.state;
        if (ev.state === 'queued') agentName = null;
        break;
      case 'queue_position':
        queuePos = ev.position;
        break;
      case 'agent_joined':
        agentName = (ev.agent && ev.agent.name) || t('agent');
        conv.state = 'active';
        note(ev.seq, t('joined', { name: agentName }), replay);
        break;
      case 'agent_left':
        note(ev.seq, t('left', { name: (ev.agent && ev.agent.name) || agentName || t('agent') }), replay);
        agentName = null;
        conv.state = 'queued';
        break;
      case 'receipt':
        receipts[ev.status] = Math.max(receipts[ev.status] || 0, ev.up_to_seq);
        if (ev.status === 'read') receipts.delivered = Math.max(receipts.delivered, ev.up_to_seq);
        for (const it of items.values()) if (it.sender === 'visitor') paintStatus(it);
        break;
      case 'closed':
        conv.state = 'ended';
        endedBy = ev.by;
        if (conn) conn.stop();
        conn = null;
        setError('conn', null);
        break;
      case 'typing':
        showTyping(ev.state === 'composing');
        return;
      default:
        return;
    }
    if (!replay) saveConv();
    if (view === 'chat') show('chat');
  }

  // --------------------------------------------------------------- messages
  function note(seq, text, replay) {
    log.append(h('li', { class: 'note', 'data-seq': String(seq), text }));
    if (!replay) announce(text);
    scrollDown();
  }

  function announce(text) {
    live.textContent = text;
  }

  function addLocal(p, failed) {
    const it = { client_id: p.client_id, body: p.body, created_at: p.created_at, sender: 'visitor', failed };
    items.set(p.client_id, it);
    render(it);
    return it;
  }

  function addMessage(m, replay) {
    const k = m.client_id && items.has(m.client_id) ? m.client_id : m.id;
    let it = items.get(k);
    if (it && it.seq) return; // already shown: never twice
    if (!it) {
      it = {};
      items.set(k, it);
    }
    Object.assign(it, m, { failed: false, busy: false });
    if (m.client_id) dropPending(m.client_id);
    render(it);
    if (m.sender !== 'visitor') {
      showTyping(false);
      if (!replay && !isOpen) setUnread(unread + 1);
      if (!replay) announce(t('newMessage', { name: m.author || (m.sender === 'agent' ? agentName || t('agent') : (channel && channel.name) || ''), text: m.body }));
      markRead();
    }
  }

  function render(it) {
    const who = it.sender === 'visitor' ? t('you') : it.author || (it.sender === 'agent' ? agentName || t('agent') : '');
    if (!it.node) {
      it.st = h('p', { class: 'st' });
      it.node = h('li', { class: 'msg ' + it.sender },
        h('p', { class: 'meta' }, [who, formatTime(lang, it.created_at)].filter(Boolean).join(' · ')),
        it.attachment ? fileCard(it.attachment) : h('p', { class: 'text' }, linkify(it.body || '')),
        it.sender === 'visitor' ? it.st : null);
    }
    if (it.seq) it.node.setAttribute('data-seq', String(it.seq));
    paintStatus(it);
    place(it);
    scrollDown();
  }

  /** Keeps the log ordered by seq; unacknowledged messages stay at the end. */
  function place(it) {
    if (!it.seq) {
      if (it.node.parentNode !== log) log.append(it.node);
      return;
    }
    let before = null;
    for (const li of log.children) {
      const s = Number(li.getAttribute('data-seq'));
      if (li !== it.node && (!s || s > it.seq)) {
        before = li;
        break;
      }
    }
    if (it.node.nextSibling !== before || it.node.parentNode !== log) log.insertBefore(it.node, before);
  }

  function paintStatus(it) {
    if (it.sender !== 'visitor') return;
    it.node.classList.toggle('failed', !!it.failed);
    const key = it.failed ? 'failed' : !it.seq ? 'sending' : receipts.read >= it.seq ? 'read' : receipts.delivered >= it.seq ? 'delivered' : 'sent';
    put(it.st, h('span', { text: t(key) }), it.failed ? h('button', { type: 'button', text: t('retry'), onclick: () => post(it) }) : null);
    it.node.setAttribute('data-status', key);
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function markRead() {
    if (!isOpen || document.hidden || !conn || maxSeenSeq <= readSent) return;
    if (conn.send({ type: 'read', up_to_seq: maxSeenSeq })) readSent = maxSeenSeq;
  }
  document.addEventListener('visibilitychange', markRead);

  function showTyping(on) {
    clearTimeout(typingOff);
    typingLine.textContent = on ? t('typing', { name: agentName || t('agent') }) : '';
    if (on) typingOff = setTimeout(() => showTyping(false), 30000);
  }

  // ----------------------------------------------------------------- sending
  function pending() {
    return store.get('pending') || [];
  }
  function dropPending(clientId) {
    const list = pending();
    const rest = list.filter((p) => p.client_id !== clientId);
    if (rest.length !== list.length) store.set('pending', rest);
  }

  function onDraft() {
    store.set('draft', composer.value);
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

  function onComposerKey(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendDraft();
    }
  }

  function sendDraft() {
    const text = composer.value;
    if (!convId) return;
    sendFiles();
    if (!text.trim()) return;
    const max = (channel && channel.limits && channel.limits.max_message_chars) || 4000;
    if (text.length > max) return setError('send', t('tooLong', { n: max }));
    const p = { client_id: uuid(), body: text, created_at: new Date().toISOString() };
    store.set('pending', pending().concat(p));
    composer.value = '';
    store.set('draft', '');
    stopTyping();
    post(addLocal(p, false));
    composer.focus();
  }

  async function post(it) {
    if (it.busy || it.seq) return;
    it.busy = true;
    it.failed = false;
    paintStatus(it);
    if (conn) conn.nudge(); // the visitor acts: try the stream now, not at the next backoff step
    try {
      const m = await api.send(convId, token, it.client_id, it.body);
      it.busy = false;
      addMessage(m, false);
      setError('send', null);
      if (conn) conn.nudge();
    } catch (e) {
      it.busy = false;
      if (it.seq) return; // the event stream acknowledged it meanwhile
      it.failed = true;
      paintStatus(it);
      if (e.code === 'conversation_ended') {
        conv.state = 'ended';
        show('chat');
      }
      setError('send', e.code === 'network' ? t('errSend') : errorText(e));
    }
  }

  // ------------------------------------------------------------------ files
  // Picked files wait in the review list (name, size, Remove) until Send;
  // then each uploads in its own request, with progress and Cancel upload.
  // Sent files come back as messages with a Download button.
  function onPick() {
    const picked = [...fileInput.files];
    fileInput.value = '';
    const r = review(tray.length, picked, channel && channel.limits);
    const problems = r.tooMany ? [t('tooManyFiles', { n: r.tooMany })] : r.tooBig.map((f) => t('fileTooBig', { name: f.name, size: formatSize(lang, r.maxBytes) }));
    setError('file', problems.join(' ') || null);
    for (const file of r.add) {
      const f = { file, id: uuid(), state: 'ready', progress: 0 };
      tray.push(f);
      paintFile(f);
    }
  }

  function paintFile(f) {
    const nameId = f.nameId || (f.nameId = nextId('file'));
    const name = h('span', { class: 'fname', id: nameId, text: f.file.name });
    const btn = (key, onclick) => h('button', { class: 'link', type: 'button', text: t(key), 'aria-describedby': nameId, onclick });
    const busy = f.state === 'uploading';
    const node = h('li', { class: 'file', 'data-state': f.state },
      h('p', null, name, h('span', { class: 'fsize', text: formatSize(lang, f.file.size) })),
      busy ? h('progress', { max: '100', value: String(Math.round(f.progress * 100)), 'aria-labelledby': nameId }) : null,
      f.state === 'failed' ? h('p', { class: 'warn', text: f.error }) : null,
      h('p', { class: 'acts' },
        busy ? btn('cancelUpload', () => cancelFile(f)) : btn('remove', () => dropFile(f, true)),
        f.state === 'failed' ? btn('retry', () => uploadFile(f)) : null));
    if (f.node && f.node.parentNode === trayList) trayList.replaceChild(node, f.node);
    else trayList.append(node);
    f.node = node;
  }

  function dropFile(f, refocus) {
    const i = tray.indexOf(f);
    if (i >= 0) tray.splice(i, 1);
    if (f.node) f.node.remove();
    if (!tray.some((x) => x.state === 'failed')) setError('file', null);
    if (refocus) composer.focus();
  }

  function cancelFile(f) {
    if (f.up) f.up.abort();
    dropFile(f, true);
  }

  function sendFiles() {
    const ready = tray.filter((f) => f.state === 'ready');
    const batch = uuid();
    for (const f of ready) {
      f.batch = batch;
      uploadFile(f);
    }
  }

  async function uploadFile(f) {
    f.state = 'uploading';
    f.progress = 0;
    paintFile(f);
    f.up = api.upload(convId, token, f.file, f.batch || uuid(), f.id, (p) => {
      f.progress = p;
      const bar = f.node.querySelector('progress');
      if (bar) bar.value = Math.round(p * 100);
    });
    try {
      const m = await f.up.promise;
      dropFile(f, false);
      addMessage(m, false);
      announce(t('fileSent', { name: f.file.name }));
    } catch (e) {
      if (e.code === 'aborted') return;
      f.state = 'failed';
      f.error = fileErrorText(e, f.file.name);
      setError('file', f.error);
      paintFile(f);
    } finally {
      f.up = null;
    }
  }

  function fileErrorText(e, name) {
    const b = e.body || {};
    if (e.code === 'file_too_large') return t('fileTooBig', { name, size: formatSize(lang, b.limit_bytes || 5242880) });
    if (e.code === 'too_many_files') return t('tooManyFiles', { n: b.limit || 5 });
    if (e.code === 'file_type_not_allowed') return t('fileType', { name });
    if (e.code === 'network' || e.code === 'internal' || e.status >= 500) return t('errFile', { name });
    return errorText(e);
  }

  function fileCard(a) {
    const nameId = nextId('att');
    return h('p', { class: 'text att' },
      h('span', { class: 'fname', id: nameId, text: a.name }),
      h('span', { class: 'fsize', text: formatSize(lang, a.size) }),
      h('button', { class: 'dl', type: 'button', title: t('download'), 'aria-label': t('download'), 'aria-describedby': nameId, onclick: () => download(a) }, svg(ICON_DOWN)));
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

  // ------------------------------------------------------------ chat screen
  function updateChat() {
    const st = conv ? conv.state : 'queued';
    const ended = ENDED.includes(st);
    const menu = st === 'chatbot_menu' || (st === 'started' && channel && channel.mode === 'chatbot');
    const waiting = st === 'queued' || st === 'offered' || st === 'started';
    status.textContent = ended || menu || !waiting ? '' : (queuePos === 1 ? t('positionFirst') : queuePos > 1 ? t('position', { n: queuePos }) : t('waiting')) + ' ' + t('waitHint');
    if (ended || !agentName) typingLine.textContent = '';
    composerBox.hidden = ended || menu;
    trayList.hidden = composerBox.hidden;
    endedBox.hidden = !ended;
    endedText.textContent = t(endedBy === 'agent' ? 'endedByAgent' : 'ended');
    // Sent out of the queue to the alternatives (closing time, overflow):
    // show them right there, as on the out-of-hours screen.
    const outOfHours = st === 'closed_out_of_hours' && channel;
    if (outOfHours && !endedInfo.firstChild) put(endedInfo, closedScreen(channel));
    if (!outOfHours) endedInfo.replaceChildren();
    endedText.hidden = !!outOfHours;
    endBtn.hidden = ended;
    if (ended) confirmBox.hidden = true;
    const opts = menu ? (conv && conv.options && conv.options.length ? conv.options : (channel && channel.options) || []) : [];
    if (optionsList.childElementCount !== opts.length || !menu) {
      put(optionsList, opts.map((o) => h('button', { class: 'btn2', type: 'button', text: o.label, onclick: () => choose(o.id) })));
    }
    options.hidden = !opts.length;
    if (composer.value === '' && store.get('draft')) composer.value = store.get('draft');
  }

  async function choose(optionId) {
    for (const b of options.querySelectorAll('button')) b.disabled = true;
    try {
      const c = await api.choice(convId, token, optionId);
      conv = Object.assign(conv || {}, c);
      if (c.queue_position != null) queuePos = c.queue_position;
      saveConv();
      setError('choice', null);
      show('chat');
      if (isOpen && !composerBox.hidden) composer.focus();
    } catch (e) {
      for (const b of options.querySelectorAll('button')) b.disabled = false;
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
      conv = Object.assign(conv, c, { state: c.state || 'ended' });
      endedBy = 'visitor';
      if (conn) conn.stop();
      conn = null;
      setError('conn', null);
      setError('end', null);
      saveConv();
      show('chat');
      restartBtn.focus();
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
      const r = await api.start(key, { name: profile.name, email: profile.email, page_url: location.href, language: lang });
      begin(r.conversation_id, r.token, r.conversation, true);
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

  // ------------------------------------------------------------------ start
  relabel();
  (document.body || document.documentElement).append(host);
  resume();
  const ready = loadChannel().then(() => {
    if (view === 'chat') show('chat');
    else if (isOpen) open(false);
  });
  if (store.get('open')) open(false);
  return { open: () => ready.then(() => open()), close, host };
}
