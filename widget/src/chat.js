// The chat screen (spec R1, R2, C1, X1, X2): the message log in seq order
// (unsent messages last, each visitor message marked sending, sent,
// delivered, read or failed with Retry), the queue line, the agent's typing
// line, the chatbot options, the composer with the file tray, and the ended
// box. Built once, so focus, scroll and draft survive updates; the
// controller (app.js) tells it what changed in the state (state.js).

import { h, put, linkify, nextId, icon } from './dom.js';
import { formatTime, formatSize } from './i18n.js';
import { statusOf, screenOf, agentName } from './state.js';
import { closedScreen } from './closed.js';

const ICON_CLIP = 'M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z';
const ICON_DOWN = 'M5 20h14v-2H5zM19 9h-4V3H9v6H5l7 7z';

/**
 * ctx: t(), lang(), state(), channel(), draft() (the saved draft),
 * typed(text), send(), post(item), choose(optionId), restart(), download(attachment).
 * `tray` is the file tray (tray.js), shown under the composer.
 */
export function createChat(ctx, tray) {
  const items = new Map(); // client_id (unsent) or id -> { msg, node, st, failed, busy }
  const log = h('ol', { class: 'log', tabindex: '0' });
  const status = h('p', { class: 'status wait', role: 'status' });
  const typingLine = h('p', { class: 'status', 'aria-hidden': 'true' });
  const optionsPrompt = h('p', { id: nextId('topic') });
  const optionsList = h('div', { class: 'choices' });
  const options = h('div', { class: 'options', role: 'group', 'aria-labelledby': optionsPrompt.id }, optionsPrompt, optionsList);
  const onKey = (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ctx.send();
    }
  };
  const composer = h('textarea', { rows: '2', oninput: () => ctx.typed(composer.value), onkeydown: onKey });
  const sendBtn = h('button', { class: 'btn', type: 'button', onclick: () => ctx.send() });
  const fileInput = h('input', {
    type: 'file', multiple: true, hidden: true, tabindex: '-1', 'aria-hidden': 'true',
    onchange: () => {
      const picked = [...fileInput.files];
      fileInput.value = '';
      tray.pick(picked);
    },
  });
  const attachBtn = h('button', { class: 'clip', type: 'button', onclick: () => fileInput.click() }, icon(ICON_CLIP));
  const composerBox = h('div', { class: 'composer' }, attachBtn, fileInput, composer, sendBtn);
  const endedText = h('p', { class: 'muted' });
  const endedInfo = h('div');
  const restartBtn = h('button', { class: 'btn', type: 'button', onclick: () => ctx.restart() });
  const endedBox = h('div', { class: 'ended' }, endedText, endedInfo, restartBtn);
  const view = h('div', { class: 'chat' }, log, status, typingLine, options, tray.list, composerBox, endedBox);
  let typingOff = 0;
  let optionsShown = '';

  const scrollDown = () => (log.scrollTop = log.scrollHeight);
  const agentLabel = () => agentName(ctx.state()) || ctx.t()('agent');

  function note(text, seq) {
    log.append(h('li', { class: 'note', 'data-seq': String(seq), text }));
    scrollDown();
  }

  /** Shows a new or completed message (from state.messages); returns its item. */
  function message(m, failed = false) {
    const k = m.client_id && items.has(m.client_id) ? m.client_id : m.id || m.client_id;
    let it = items.get(k);
    if (!it) items.set(k, (it = {}));
    Object.assign(it, { msg: m, failed, busy: false });
    render(it);
    if (m.sender !== 'visitor') typing(false);
    return it;
  }

  function render(it) {
    const t = ctx.t();
    const m = it.msg;
    if (!it.node) {
      const who = m.sender === 'visitor' ? t('you') : m.author || (m.sender === 'agent' ? agentLabel() : '');
      it.st = h('p', { class: 'st' });
      it.node = h('li', { class: 'msg ' + m.sender },
        h('p', { class: 'meta' }, [who, formatTime(ctx.lang(), m.created_at)].filter(Boolean).join(' · ')),
        m.attachment ? fileCard(m.attachment) : h('p', { class: 'text' }, linkify(m.body || '')),
        m.sender === 'visitor' ? it.st : null);
    }
    if (m.seq) it.node.setAttribute('data-seq', String(m.seq));
    paint(it);
    place(it);
    scrollDown();
  }

  /** Keeps the log ordered by seq; unacknowledged messages stay at the end. */
  function place(it) {
    const seq = it.msg.seq;
    if (!seq) {
      if (it.node.parentNode !== log) log.append(it.node);
      return;
    }
    let before = null;
    for (const li of log.children) {
      const s = Number(li.getAttribute('data-seq'));
      if (li !== it.node && (!s || s > seq)) {
        before = li;
        break;
      }
    }
    if (it.node.nextSibling !== before || it.node.parentNode !== log) log.insertBefore(it.node, before);
  }

  /** The mark under a visitor message: sending, sent, delivered, read, or failed with Retry. */
  function paint(it) {
    if (it.msg.sender !== 'visitor') return;
    const t = ctx.t();
    it.node.classList.toggle('failed', !!it.failed);
    const key = it.failed ? 'failed' : statusOf(ctx.state(), it.msg);
    put(it.st, h('span', { text: t(key) }), it.failed ? h('button', { type: 'button', text: t('retry'), onclick: () => ctx.post(it) }) : null);
    it.node.setAttribute('data-status', key);
  }

  function typing(on) {
    clearTimeout(typingOff);
    typingLine.textContent = on ? ctx.t()('typing', { name: agentLabel() }) : '';
    if (on) typingOff = setTimeout(() => typing(false), 30000);
  }

  function fileCard(a) {
    const t = ctx.t();
    const nameId = nextId('att');
    return h('p', { class: 'text att' },
      h('span', { class: 'fname', id: nameId, text: a.name }),
      h('span', { class: 'fsize', text: formatSize(ctx.lang(), a.size) }),
      h('button', { class: 'dl', type: 'button', title: t('download'), 'aria-label': t('download'), 'aria-describedby': nameId, onclick: () => ctx.download(a) }, icon(ICON_DOWN)));
  }

  /** Brings every part in line with the state: queue line, menu, composer, ended box. */
  function update() {
    const t = ctx.t();
    const state = ctx.state();
    const channel = ctx.channel();
    const s = screenOf(state, channel);
    const q = state.queue;
    status.textContent = s.waiting ? (q === 1 ? t('positionFirst') : q > 1 ? t('position', { n: q }) : t('waiting')) + ' ' + t('waitHint') : '';
    if (s.ended || !state.agent) typingLine.textContent = '';
    composerBox.hidden = s.ended || s.menu;
    tray.list.hidden = composerBox.hidden;
    endedBox.hidden = !s.ended;
    endedText.textContent = t(state.endedBy === 'agent' ? 'endedByAgent' : 'ended');
    // Sent out of the queue to the alternatives (closing time, overflow):
    // show them right there, as on the out-of-hours screen.
    const outOfHours = s.outOfHours && channel;
    if (outOfHours && !endedInfo.firstChild) put(endedInfo, closedScreen(channel, ctx.lang(), t));
    if (!outOfHours) endedInfo.replaceChildren();
    endedText.hidden = !!outOfHours;
    // Drawn again only when the options change (ids, labels, order), so
    // focus stays on a button while nothing changed.
    const shown = JSON.stringify(s.options.map((o) => [o.id, o.label]));
    if (shown !== optionsShown || !s.menu) {
      optionsShown = shown;
      put(optionsList, s.options.map((o) => h('button', { class: 'btn2', type: 'button', text: o.label, onclick: () => ctx.choose(o.id) })));
    }
    options.hidden = !s.options.length;
    if (composer.value === '' && ctx.draft()) composer.value = ctx.draft();
    return s;
  }

  return {
    view,
    composer,
    composerBox,
    restartBtn,
    note,
    message,
    typing,
    update,
    /** Repaints every visitor message's mark (after a receipt). */
    paintAll: () => items.forEach(paint),
    paint,
    lockOptions(locked) {
      for (const b of options.querySelectorAll('button')) b.disabled = locked;
    },
    relabel() {
      const t = ctx.t();
      log.setAttribute('aria-label', t('messages'));
      optionsPrompt.textContent = t('chooseTopic');
      composer.setAttribute('aria-label', t('message'));
      composer.placeholder = t('message');
      sendBtn.textContent = t('send');
      attachBtn.setAttribute('aria-label', t('attach'));
      attachBtn.title = t('attach');
      restartBtn.textContent = t('startNew');
      tray.relabel();
    },
    /** Forgets the conversation's messages, files and text. */
    clear() {
      items.clear();
      log.replaceChildren();
      tray.clear();
      composer.value = '';
    },
  };
}
