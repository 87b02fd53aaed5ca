// DOM helpers. Text from visitors, agents and the server only ever enters
// the page through text nodes; links in messages become <a> elements whose
// href is a parsed http(s) URL. No innerHTML anywhere in the widget.

/** h('button', {class: 'x', onclick: fn, 'aria-label': 'Send'}, child, 'text') */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const k in attrs) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

/** Replaces every child of `el`. */
export function put(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;

/**
 * Splits message text into plain parts and links: [{text}, {text, href}, …].
 * Only absolute http(s) URLs become links; trailing punctuation stays text.
 */
export function splitLinks(text) {
  const out = [];
  let last = 0;
  text = String(text);
  for (const m of text.matchAll(URL_RE)) {
    const raw = m[0].replace(/[.,;:!?)\]]+$/, '');
    let url;
    try {
      url = new URL(raw);
    } catch (e) {
      continue;
    }
    if (m.index > last) out.push({ text: text.slice(last, m.index) });
    out.push({ text: raw, href: url.href });
    last = m.index + raw.length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/** Message text as nodes: text nodes plus safe <a> elements; line breaks are kept by CSS (pre-wrap). */
export function linkify(text) {
  return splitLinks(text).map((p) =>
    p.href ? h('a', { href: p.href, target: '_blank', rel: 'noopener noreferrer nofollow', text: p.text }) : p.text,
  );
}

/** href for an out-of-hours alternative, or null when it is not a safe link. */
export function alternativeHref(alt) {
  const v = String(alt.value || '').trim();
  if (alt.kind === 'phone') {
    const tel = v.replace(/[^\d+*#]/g, '');
    return tel ? 'tel:' + tel : null;
  }
  if (alt.kind === 'email') return /^[^\s@]+@[^\s@]+$/.test(v) ? 'mailto:' + v : null;
  try {
    const u = new URL(v);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
  } catch (e) {
    return null;
  }
}

let uid = 0;
export const nextId = (p) => 'fd-' + p + '-' + ++uid;

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  const x = [...b].map((n) => n.toString(16).padStart(2, '0')).join('');
  return x.slice(0, 8) + '-' + x.slice(8, 12) + '-' + x.slice(12, 16) + '-' + x.slice(16, 20) + '-' + x.slice(20);
}

/** A decorative inline SVG icon (hidden from assistive technology) from one path. */
export function icon(d) {
  const ns = 'http://www.w3.org/2000/svg';
  const s = document.createElementNS(ns, 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('aria-hidden', 'true');
  s.setAttribute('focusable', 'false');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', d);
  s.append(p);
  return s;
}
