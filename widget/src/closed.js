// The out-of-hours screen (spec H1–H5): the channel's closed text, the next
// opening in the visitor's time zone and language, and the alternatives as
// tel:, mailto: and http(s) links. Also shown in the chat's ended box when a
// queued chat is sent to the alternatives (closing time, overflow).

import { h, alternativeHref } from './dom.js';
import { formatWhen } from './i18n.js';

/** `info` is channel info (or a 409 `closed` body): { next_open, closed: { text, alternatives } }. */
export function closedScreen(info, lang, t) {
  const closed = info.closed || {};
  const alts = (closed.alternatives || []).map((alt) => {
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
