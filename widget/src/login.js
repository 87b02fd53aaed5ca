// The pre-chat form (spec W2–W4): name and e-mail, prefilled from the last
// chat, checked here first (empty, e-mail shape) and then by the server,
// whose 422 codes are shown on the field they name.

import { h, nextId } from './dom.js';

const EMAIL_RE = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;

/**
 * `start({ name, email })` starts the chat and rejects with an ApiError;
 * field errors are shown on the form, any other goes to `failed(err)`.
 */
export function loginScreen({ t, limits, profile, start, failed }) {
  const nameId = nextId('name');
  const emailId = nextId('email');
  const warnId = nextId('warn');
  const name = h('input', { id: nameId, type: 'text', autocomplete: 'name', maxlength: String(limits.max_name_chars), value: profile.name || '' });
  const email = h('input', { id: emailId, type: 'email', autocomplete: 'email', maxlength: String(limits.max_email_chars), value: profile.email || '' });
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
  const onsubmit = async (e) => {
    e.preventDefault();
    const n = name.value.trim();
    const m = email.value.trim();
    if (!n || !m) return say(t('empty'), !n ? name : email);
    if (!EMAIL_RE.test(m)) return say(t('invalidEmail'), email);
    say('');
    submit.disabled = true;
    try {
      await start({ name: n, email: m });
    } catch (err) {
      submit.disabled = false;
      const field = err.body && err.body.field === 'email' ? email : name;
      if (err.code === 'empty_field') say(t('empty'), field);
      else if (err.code === 'invalid_email') say(t('invalidEmail'), email);
      else if (err.code === 'too_long') say(t('tooLong', { n: err.body.limit || limits.max_name_chars }), field);
      else failed(err);
    }
  };
  return h('form', { class: 'pad', novalidate: true, onsubmit },
    h('p', { text: t('intro') }),
    h('div', null, h('label', { for: nameId, text: t('name') }), name),
    h('div', null, h('label', { for: emailId, text: t('email') }), email),
    warn,
    submit);
}
