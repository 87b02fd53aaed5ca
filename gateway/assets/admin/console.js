// Frontdesk console: sends its forms to the admin JSON API (the same
// handlers and validation as any API client) and shows each refused field
// next to its input; shows the channel editor's draft in the widget preview
// (both ends: the editor, and the page in its iframe). No framework: the
// pages are server-rendered.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

async function api(method, url, body, extra = {}) {
  const response = await fetch(url, {
    method,
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf, ...extra },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// A new item is POSTed (the server refuses a key in use); an edit is a PUT
// of the revision that was read, which the server refuses if someone
// changed it since.
function save(form, key, item, revision) {
  if (!form.hasAttribute('data-existing')) return api('POST', form.dataset.api.replace(/\/$/, ''), item);
  return api('PUT', form.dataset.api + encodeURIComponent(key), item, { 'if-match': `"${revision}"` });
}
const saved = (reply) => reply.status === 201 || reply.status === 204;

const FR = {
  'Saving…': 'Enregistrement…',
  'Saved. Visitors see it from their next page view.': 'Enregistré. Les visiteurs le voient dès leur prochaine page.',
  'Saved. It applies to the next offer.': 'Enregistré. Cela vaut dès la prochaine offre.',
  'Copied.': 'Copié.',
  'Selected: press Ctrl+C to copy.': 'Sélectionné : Ctrl+C pour copier.',
  'Reconnecting…': 'Reconnexion…',
  'Updated': 'Mis à jour à',
  'Nobody is waiting.': "Personne n'attend.",
  'ringing': 'sonne',
  available: 'disponible',
  busy: 'occupé',
  offline: 'hors ligne',
  'Next opening:': 'Prochaine ouverture :',
};
const tr = (text) => (document.documentElement.lang === 'fr' ? FR[text] ?? text : text);

const lines = (text) => text.split('\n').map((l) => l.trim()).filter(Boolean);
const META = ['source', 'read_only', 'updated_at', 'updated_by'];

function setPath(target, path, value) {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) node = node[part] ??= {};
  node[parts.at(-1)] = value;
}

function getPath(source, path) {
  return path.split('.').reduce((node, part) => node?.[part], source);
}

// --- the channel form --------------------------------------------------
function optionRow(form, option = {}) {
  const row = form.querySelector('#option-template').content.firstElementChild.cloneNode(true);
  row.querySelector('[name=opt-id]').value = option.id ?? '';
  row.querySelector('[name=opt-label]').value = option.label ?? '';
  row.querySelector('[name=opt-welcome]').value = option.welcome ?? '';
  if (option.queue) row.querySelector('[name=opt-queue]').value = option.queue;
  form.querySelector('#options').append(row);
  return row;
}

function fill(form, channel) {
  for (const input of form.elements) {
    if (!input.name || input.name.startsWith('opt-')) continue;
    const value = getPath(channel, input.name);
    if (input.type === 'checkbox' && input.name === 'languages') {
      input.checked = (value ?? []).includes(input.value);
    } else if (input.type === 'checkbox') {
      input.checked = value !== false;
    } else if (Array.isArray(value)) {
      input.value = value.join('\n');
    } else if (value !== undefined && value !== null) {
      input.value = value;
    }
  }
  for (const option of channel.options ?? []) optionRow(form, option);
}

function read(form, base) {
  const channel = structuredClone(base);
  for (const key of META) delete channel[key];
  const textLists = ['allowed_origins', 'schedule.open', 'schedule.holidays'];
  for (const input of form.elements) {
    if (!input.name || input.name.startsWith('opt-') || input.name === 'languages') continue;
    let value = input.type === 'checkbox' ? input.checked : input.value;
    if (textLists.includes(input.name)) value = lines(value);
    else if (input.type === 'number') value = value === '' ? undefined : Number(value);
    else if (input.name === 'queue' || input.name === 'schedule.timezone') value = value || null;
    if (value !== undefined) setPath(channel, input.name, value);
  }
  channel.languages = [...form.querySelectorAll('[name=languages]:checked')].map((i) => i.value);
  channel.options = [...form.querySelectorAll('#options > li')].map((row) => ({
    id: row.querySelector('[name=opt-id]').value.trim(),
    label: row.querySelector('[name=opt-label]').value,
    welcome: row.querySelector('[name=opt-welcome]').value,
    queue: row.querySelector('[name=opt-queue]').value,
  }));
  return channel;
}

// "channels[key=web].options.queue" → the input for "options.queue".
function inputFor(form, key) {
  const field = key.replace(/^channels\[key=[^\]]*\]\./, '');
  const name = { 'options.id': 'opt-id', 'options.queue': 'opt-queue', options: 'opt-label', body: 'name' }[field] ?? field;
  return form.querySelector(`[name="${CSS.escape(name)}"]`) ?? form.querySelector(`[name^="${CSS.escape(name)}."]`);
}

function showErrors(form, fields) {
  for (const old of form.querySelectorAll('.field-error')) old.remove();
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  let first = null;
  for (const { key, message } of fields) {
    const input = inputFor(form, key) ?? form.querySelector('[name=name]');
    const note = document.createElement('span');
    note.className = 'field-error';
    note.id = `error-${Math.random().toString(36).slice(2)}`;
    note.textContent = message;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', note.id);
    input.after(note);
    first ??= input;
  }
  first?.focus();
}

async function channelForm(form) {
  const status = form.querySelector('.status');
  let base = { languages: ['en', 'fr'], language: 'en', enabled: true, mode: 'live', schedule: {}, closed: {} };
  if (form.hasAttribute('data-existing')) {
    const loaded = await api('GET', form.dataset.api + encodeURIComponent(form.dataset.key));
    if (loaded.status === 200) base = loaded.body;
  }
  fill(form, base);
  const preview = channelPreview(form, () => read(form, base));
  // A holidays file (frontdesk.toml only) is not in the form: the check
  // could not say what the file's holidays do.
  if (base.schedule?.holidays_ics) preview.hours(null);
  else hoursCheck(form, preview.hours);
  if (form.hasAttribute('data-read-only')) {
    for (const input of form.elements) input.disabled = true;
    return;
  }
  form.addEventListener('click', (event) => {
    const button = event.target.closest('button');
    if (!button) return;
    if (button.hasAttribute('data-add-option')) optionRow(form).querySelector('input').focus();
    const row = button.closest('li');
    if (button.hasAttribute('data-remove')) row.remove();
    if (button.dataset.move === '-1' && row.previousElementSibling) row.previousElementSibling.before(row);
    if (button.dataset.move === '1' && row.nextElementSibling) row.nextElementSibling.after(row);
    if (button.dataset.move) button.focus();
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const channel = read(form, base);
    status.textContent = tr('Saving…');
    const reply = await save(form, channel.key, channel, base.updated_at);
    if (saved(reply)) {
      status.textContent = tr('Saved. Visitors see it from their next page view.');
      showErrors(form, []);
      if (!form.hasAttribute('data-existing')) location.assign(`/admin/channels/${encodeURIComponent(channel.key)}`);
      base = (await api('GET', form.dataset.api + encodeURIComponent(channel.key))).body ?? channel;
    } else {
      status.textContent = reply.body?.message ?? `Not saved (${reply.status}).`;
      showErrors(form, reply.body?.fields ?? []);
    }
  });
}

// --- business hours: open or closed now, why, next opening ---------------
// Checked as the admin types, by the server, with the config file's rules;
// each answer ({ open, next_open }, or null when refused) goes to `answered`.
function hoursCheck(form, answered) {
  const out = form.querySelector('#hours-now');
  if (!out) return;
  const fields = ['schedule.timezone', 'schedule.open', 'schedule.holidays'].map((n) => form.querySelector(`[name="${n}"]`));
  let timer = null;
  const check = async () => {
    const schedule = {
      timezone: fields[0].value.trim() || null,
      open: lines(fields[1].value),
      holidays: lines(fields[2].value),
    };
    const answer = await api('POST', '/api/v1/admin/schedule/check', { schedule }).catch(() => ({ status: 0 }));
    answered(answer.status === 200 ? answer.body : null);
    for (const field of fields) field.removeAttribute('aria-invalid');
    if (answer.status === 200) {
      const next = answer.body.next_open ? ` ${tr('Next opening:')} ${answer.body.next_open}` : '';
      out.textContent = `${answer.body.explanation}${next}`;
      out.classList.remove('error');
    } else {
      out.textContent = answer.body?.message ?? '';
      out.classList.add('error');
      for (const field of fields.slice(1)) field.setAttribute('aria-invalid', 'true');
    }
  };
  for (const field of fields) field.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(check, 300); });
  check();
}

// --- the widget preview ----------------------------------------------------
// The editor frames /admin/channels/KEY/preview (same origin; only the
// console may frame it, and it may open no connection), where the real
// widget runs in preview mode. The draft goes there by postMessage to this
// origin only, and each end reads only the other's messages. The draft is
// the channel as the visitor API's GET /api/v1/channels/{key} would give it
// once saved, each option with its welcome text too; open or closed comes
// from the hours check, or the admin's choice of what to preview.
function widgetChannel(channel, open, nextOpen) {
  return {
    key: channel.key,
    name: channel.name,
    mode: channel.mode,
    open,
    next_open: open ? null : nextOpen,
    timezone: channel.schedule?.timezone ?? 'UTC',
    language: channel.language,
    languages: channel.languages,
    closed: { text: channel.closed?.text ?? '', alternatives: channel.closed?.alternatives ?? [] },
    // An option still without a label is not one a visitor could pick.
    options: channel.options.filter((o) => o.label.trim()).map(({ id, label, welcome }) => ({ id, label, welcome })),
    limits: channel.limits ?? {},
  };
}

function channelPreview(form, draft) {
  const frame = document.getElementById('preview-frame');
  if (!frame) return { hours() {} };
  const section = frame.closest('section');
  const language = section.querySelector('#preview-lang');
  let hours; // the last hours check's answer: undefined until the first, null when refused
  let sent = '';
  const send = (again = false) => {
    if (hours === undefined) return; // not knowing yet whether it is open: the first answer sends
    const choice = section.querySelector('[name=preview-hours]:checked').value;
    const open = choice === 'schedule' ? hours?.open ?? true : choice === 'open';
    const message = {
      type: 'frontdesk:preview',
      channel: widgetChannel(draft(), open, hours?.next_open ?? null),
      lang: language.value,
    };
    const text = JSON.stringify(message);
    if (text === sent && !again) return;
    sent = text;
    frame.contentWindow?.postMessage(message, location.origin);
  };
  addEventListener('message', (event) => {
    if (event.origin !== location.origin || event.source !== frame.contentWindow) return;
    if (event.data?.type === 'frontdesk:preview-ready') send(true);
  });
  for (const type of ['input', 'change']) {
    form.addEventListener(type, () => send());
    section.addEventListener(type, () => send());
  }
  // Options added, removed or moved change no field's value.
  new MutationObserver(() => send()).observe(form.querySelector('#options'), { childList: true });
  return {
    hours(answer) {
      hours = answer;
      send();
    },
  };
}

// Inside the iframe: the widget (loaded with data-preview) shows each
// draft the editor framing this page sends.
function previewPage() {
  if (window.parent === window) {
    document.querySelector('.preview-alone').hidden = false;
    return;
  }
  addEventListener('message', (event) => {
    if (event.origin !== location.origin || event.source !== window.parent) return;
    const { type, channel, lang } = event.data ?? {};
    if (type === 'frontdesk:preview' && channel) window.Frontdesk?.preview?.(channel, lang);
  });
  window.parent.postMessage({ type: 'frontdesk:preview-ready' }, location.origin);
}

// --- copy buttons --------------------------------------------------------
document.addEventListener('click', async (event) => {
  const button = event.target.closest('[data-copy]');
  if (!button) return;
  const text = document.getElementById(button.dataset.copy).textContent;
  const said = button.parentElement.querySelector('.copied');
  try {
    await navigator.clipboard.writeText(text);
    if (said) said.textContent = tr('Copied.');
  } catch {
    getSelection().selectAllChildren(document.getElementById(button.dataset.copy));
    if (said) said.textContent = tr('Selected: press Ctrl+C to copy.');
  }
});

// --- queue and agent forms ---------------------------------------------
// Members are typed one per line: "101" or "101 2" (extension, penalty).
const members = {
  show: (list) => (list ?? []).map((m) => (m.penalty ? `${m.agent} ${m.penalty}` : m.agent)).join('\n'),
  read: (text) => lines(text).map((line) => {
    const [agent, penalty] = line.split(/\s+/);
    return penalty === undefined ? { agent } : { agent, penalty: Number(penalty) };
  }),
};

async function itemForm(form) {
  const status = form.querySelector('.status');
  let base = {};
  if (form.hasAttribute('data-existing')) {
    const loaded = await api('GET', form.dataset.api + encodeURIComponent(form.dataset.key));
    if (loaded.status === 200) base = loaded.body;
  }
  for (const input of form.elements) {
    if (!input.name) continue;
    const value = base[input.name];
    if (input.dataset.lines === 'members') input.value = members.show(value);
    else if (value !== undefined && value !== null) input.value = value;
  }
  if (form.hasAttribute('data-read-only')) {
    for (const input of form.elements) input.disabled = true;
    return;
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const item = structuredClone(base);
    for (const key of META) delete item[key];
    for (const input of form.elements) {
      if (!input.name) continue;
      let value = input.value;
      if (input.dataset.lines === 'members') value = members.read(value);
      else if (input.type === 'number') value = value === '' ? null : Number(value);
      else if (value === '' && (input.name === 'xmpp' || input.name === 'sip')) value = null;
      if (value === null) delete item[input.name];
      else item[input.name] = value;
    }
    const key = item.extension ?? '';
    status.textContent = tr('Saving…');
    const reply = await save(form, key, item, base.updated_at);
    if (saved(reply)) {
      status.textContent = tr('Saved. It applies to the next offer.');
      showErrors(form, []);
      if (!form.hasAttribute('data-existing')) location.assign(location.pathname.replace(/new$/, encodeURIComponent(key)));
      base = (await api('GET', form.dataset.api + encodeURIComponent(key))).body ?? item;
    } else {
      status.textContent = reply.body?.message ?? `Not saved (${reply.status}).`;
      showErrors(form, reply.body?.fields ?? []);
    }
  });
}

// --- live view ------------------------------------------------------------
function cells(row, values) {
  for (const value of values) {
    const cell = document.createElement('td');
    cell.textContent = value;
    row.append(cell);
  }
}

function minutes(since) {
  const secs = Math.max(0, Math.round((Date.now() - since) / 1000));
  return `${Math.floor(secs / 60)} min ${String(secs % 60).padStart(2, '0')} s`;
}

function liveView() {
  const status = document.getElementById('live-status');
  const waiting = document.getElementById('waiting');
  const agents = document.getElementById('agents');
  let last = null;
  const render = () => {
    if (!last) return;
    waiting.replaceChildren();
    if (last.waiting.length === 0) cells(waiting.insertRow(), [tr('Nobody is waiting.')]);
    for (const chat of last.waiting) {
      const row = document.createElement('tr');
      row.dataset.conversation = chat.id;
      cells(row, [chat.visitor_name, chat.channel_key, chat.queue ?? '', chat.position ?? '',
        minutes(chat.waiting_since), chat.ringing.join(', ') || (chat.state === 'offered' ? tr('ringing') : '')]);
      waiting.append(row);
    }
    agents.replaceChildren();
    for (const agent of last.agents) {
      const row = document.createElement('tr');
      row.dataset.agent = agent.extension;
      cells(row, [agent.name, agent.extension, tr(agent.status),
        agent.chats.map((c) => c.visitor_name).join(', ') || '—']);
      agents.append(row);
    }
  };
  const source = new EventSource('/api/v1/admin/live/stream');
  source.addEventListener('live', (event) => {
    last = JSON.parse(event.data);
    status.textContent = `${tr('Updated')} ${new Date().toLocaleTimeString()}.`;
    render();
  });
  source.onerror = () => { status.textContent = tr('Reconnecting…'); };
  setInterval(render, 1000);
}

// --- visitor data erase -----------------------------------------------------
async function eraseForm(form) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!confirm(`Erase every conversation and file of ${form.dataset.email}? This cannot be undone.`)) return;
    const done = await api('POST', '/api/v1/admin/visitors/erase', { email: form.dataset.email });
    form.querySelector('.status').textContent = done.status === 200
      ? `Erased ${done.body.conversations} conversations and ${done.body.files} files.`
      : (done.body?.message ?? `Not erased (${done.status}).`);
  });
}

const form = document.querySelector('form[data-kind=channel]');
if (form) channelForm(form);
if (document.body.hasAttribute('data-preview-page')) previewPage();
for (const item of document.querySelectorAll('form[data-kind=queue], form[data-kind=agent]')) itemForm(item);
if (document.querySelector('[data-live]')) liveView();
const erase = document.querySelector('form[data-erase]');
if (erase) eraseForm(erase);
