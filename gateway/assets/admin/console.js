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
};
const tr = (text) => (document.documentElement.lang === 'fr' ? FR[text] ?? text : text);

// What the page's catalog (i18n.rs) gives the script: `fields`, each
// rule's wording by code (none: show the API's English message), and
// `say`, its own lines; `{name}` is filled from params.
const texts = JSON.parse(document.getElementById('console-texts')?.textContent ?? '{}');
const fillIn = (text, params = {}) => text.replace(/\{(\w+)\}/g, (all, name) => params[name] ?? all);
const say = (key, params) => fillIn(texts.say?.[key] ?? key, params);
const fieldText = (f) => (texts.fields?.[f.code] ? fillIn(texts.fields[f.code], f.params) : f.message);
// A refused save: the form's status line, and the first problem alone.
const refused = (answer) => (answer.body?.fields?.length ? say('not_saved') : answer.body?.message ?? say('not_saved'));
const problem = (answer) => (answer.body?.fields?.length ? fieldText(answer.body.fields[0]) : refused(answer));

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

const ROW_FIELD = /^(opt|route|closure)-/;

function fill(form, channel) {
  for (const input of form.elements) {
    if (!input.name || ROW_FIELD.test(input.name)) continue;
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
  for (const [name, closure] of Object.entries(channel.closures ?? {})) closureRow(form, name, closure);
  for (const route of channel.schedule?.routes ?? []) routeRow(form, route);
  const defaultTo = form.querySelector('[name=route-default]');
  if (defaultTo) defaultTo.dataset.want = destinationValue(channel.schedule?.default ?? 'closed');
}

function read(form, base) {
  const channel = structuredClone(base);
  for (const key of META) delete channel[key];
  const textLists = ['allowed_origins', 'schedule.open', 'schedule.holidays'];
  for (const input of form.elements) {
    if (!input.name || ROW_FIELD.test(input.name) || input.name === 'languages') continue;
    let value = input.type === 'checkbox' ? input.checked : input.value;
    if (textLists.includes(input.name)) value = lines(value);
    else if (input.type === 'number') value = value === '' ? undefined : Number(value);
    else if (['queue', 'schedule.timezone', 'pbx_routing'].includes(input.name)) value = value || null;
    if (value !== undefined) setPath(channel, input.name, value);
  }
  channel.languages = [...form.querySelectorAll('[name=languages]:checked')].map((i) => i.value);
  channel.options = [...form.querySelectorAll('#options > li')].map((row) => ({
    id: row.querySelector('[name=opt-id]').value.trim(),
    label: row.querySelector('[name=opt-label]').value,
    welcome: row.querySelector('[name=opt-welcome]').value,
    queue: row.querySelector('[name=opt-queue]').value,
  }));
  if (form.querySelector('#routes')) readRouting(form, channel);
  return channel;
}

// Queue and agent rules that name no field of their own ("queues/agents").
const FIELD_OF_CODE = {
  ring_timeout_zero: 'ring_timeout_secs', max_chats_zero: 'max_chats_per_agent', max_wait_zero: 'max_wait_secs',
  member_twice: 'members', member_unknown: 'members', agent_unreachable: 'xmpp', jid_twice: 'xmpp', sip_uri_twice: 'sip',
  queue_twice: 'extension', agent_twice: 'extension', extension_clash: 'extension',
};

// A route's own error goes to its conditions; an unknown queue or closure
// a route sends to, to the destination that names it.
function routeInputFor(form, field, code, params = {}) {
  const route = field.match(/^schedule\.routes\[(\d+)\]/);
  if (route) return form.querySelectorAll('#routes > li [name=route-when]')[Number(route[1])] ?? null;
  if (field !== 'schedule') return null;
  const wanted = code === 'closure_unknown' ? `closure:${params.closure}` : code === 'queue_unknown' ? `queue:${params.queue}` : null;
  return [...form.querySelectorAll('[name=route-to], [name=route-default]')].find((s) => s.value === wanted) ?? null;
}

// "channels[key=web].options.queue" → the input for "options.queue".
function inputFor(form, { key, code, params }) {
  const field = FIELD_OF_CODE[code] ?? key.replace(/^(channels|queues|agents)\[[^\]]*\]\./, '');
  const routed = routeInputFor(form, field, code, params);
  if (routed) return routed;
  const name = { 'options.id': 'opt-id', 'options.queue': 'opt-queue', 'options.welcome': 'opt-welcome', options: 'opt-label', body: 'name' }[field] ?? field;
  return form.querySelector(`[name="${CSS.escape(name)}"]`) ?? form.querySelector(`[name^="${CSS.escape(name)}."]`);
}

function showErrors(form, fields) {
  for (const old of form.querySelectorAll('.field-error')) old.remove();
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  let first = null;
  const shown = new Set(); // one rule seen twice (pbx-adapter's and the tenant check) is said once
  for (const field of fields) {
    const input = inputFor(form, field) ?? form.querySelector('[name=name]') ?? form.querySelector('[name]');
    const text = fieldText(field);
    if (shown.has(`${input.name}\n${text}`)) continue;
    shown.add(`${input.name}\n${text}`);
    const note = document.createElement('span');
    note.className = 'field-error';
    note.id = `error-${Math.random().toString(36).slice(2)}`;
    note.textContent = text;
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
  const pbx = form.querySelector('[name=pbx_routing]');
  if (base.pbx_routing) pbx.dataset.following = base.pbx_routing;
  refreshRouting(form);
  const fromFile = base.schedule?.routes?.some((r) => r.holidays_ics);
  if (base.pbx_routing || fromFile) lockRoutes(form);
  if (base.schedule?.holidays_ics || base.schedule?.routes?.some((r) => r.holidays_ics)) preview.hours(null);
  else hoursCheck(form, preview.hours, () => read(form, base).schedule);
  if (form.hasAttribute('data-read-only')) {
    for (const input of form.elements) input.disabled = true;
    return;
  }
  form.addEventListener('click', (event) => {
    const button = event.target.closest('button');
    if (!button) return;
    if (button.hasAttribute('data-add-option')) optionRow(form).querySelector('input').focus();
    if (button.hasAttribute('data-add-route')) {
      routeRow(form, { to: 'open' });
      refreshRouting(form);
      form.querySelector('#routes > li:last-child textarea').focus();
    }
    if (button.hasAttribute('data-add-closure')) {
      closureRow(form);
      refreshRouting(form);
      form.querySelector('#closures > li:last-child input').focus();
    }
    const row = button.closest('li');
    if (button.hasAttribute('data-remove')) row.remove();
    if (button.dataset.move === '-1' && row.previousElementSibling) row.previousElementSibling.before(row);
    if (button.dataset.move === '1' && row.nextElementSibling) row.nextElementSibling.after(row);
    if (button.dataset.move) button.focus();
    if (button.closest('#routes, #closures')) {
      refreshRouting(form);
      form.dispatchEvent(new Event('change'));
    }
  });
  form.addEventListener('input', (event) => {
    if (event.target.name === 'closure-name') refreshRouting(form);
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
      status.textContent = refused(reply);
      showErrors(form, reply.body?.fields ?? []);
    }
  });
}

// --- business hours: open or closed now, why, next opening ---------------
// Checked as the admin types, by the server, with the config file's rules;
// each answer ({ open, next_open }, or null when refused) goes to `answered`.
function hoursCheck(form, answered, draft) {
  const out = form.querySelector('#hours-now');
  if (!out) return;
  const fields = ['schedule.timezone', 'schedule.open', 'schedule.holidays'].map((n) => form.querySelector(`[name="${n}"]`));
  let timer = null;
  const check = async () => {
    const schedule = draft();
    const answer = await api('POST', '/api/v1/admin/schedule/check', { schedule }).catch(() => ({ status: 0 }));
    answered(answer.status === 200 ? answer.body : null);
    for (const field of fields) field.removeAttribute('aria-invalid');
    if (answer.status === 200) {
      out.textContent = explain(answer.body);
      out.classList.remove('error');
    } else {
      out.textContent = problem(answer);
      out.classList.add('error');
      for (const field of fields.slice(1)) field.setAttribute('aria-invalid', 'true');
    }
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(check, 300); };
  for (const field of fields) field.addEventListener('input', later);
  // Routes: a typed condition, a chosen destination, a row added or moved.
  const isRoute = (event) => event.target === form || /^route-/.test(event.target.name ?? '');
  for (const type of ['input', 'change']) form.addEventListener(type, (event) => isRoute(event) && later());
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
// A route to a named closure shows that closure's text and alternatives.
function widgetChannel(channel, open, nextOpen, destination) {
  const closure = (!open && destination?.closed && channel.closures?.[destination.closed]) || channel.closed;
  return {
    key: channel.key,
    name: channel.name,
    mode: channel.mode,
    open,
    next_open: open ? null : nextOpen,
    timezone: channel.schedule?.timezone ?? 'UTC',
    language: channel.language,
    languages: channel.languages,
    closed: { text: closure?.text ?? '', alternatives: closure?.alternatives ?? [] },
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
      channel: widgetChannel(draft(), open, hours?.next_open ?? null, choice === 'schedule' ? hours?.destination : null),
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

// A route's destination ("open", "menu", "closed", {queue}, {closed}) in words.
function destinationText(to) {
  if (to?.queue !== undefined) return say('to_queue', { queue: to.queue });
  if (to?.closed !== undefined) return say('to_closure', { name: to.closed });
  return say(`to_${to ?? 'open'}`);
}

// --- routes by time and named closures ----------------------------------
// Each route is a row: its conditions (holiday dates are told apart by
// their YYYY-MM-DD start) and where it goes; the default says where a chat
// goes when none holds. While there are routes, the open rules and
// holidays do not apply (the server refuses both at once).
const HOLIDAY_LINE = /^\d{4}-\d{2}-\d{2}/;

function destinationValue(to) {
  if (to?.queue !== undefined) return `queue:${to.queue}`;
  if (to?.closed !== undefined) return `closure:${to.closed}`;
  return to ?? 'open';
}

function destinationOf(value) {
  if (value.startsWith('queue:')) return { queue: value.slice(6) };
  if (value.startsWith('closure:')) return { closed: value.slice(8) };
  return value;
}

function routeRow(form, route = {}) {
  const row = form.querySelector('#route-template').content.firstElementChild.cloneNode(true);
  const when = [route.when, route.holidays].flat().filter(Boolean);
  row.querySelector('[name=route-when]').value = when.join('\n');
  row.querySelector('[name=route-to]').dataset.want = destinationValue(route.to);
  form.querySelector('#routes').append(row);
  return row;
}

function closureRow(form, name = '', closure = {}) {
  const row = form.querySelector('#closure-template').content.firstElementChild.cloneNode(true);
  row.querySelector('[name=closure-name]').value = name;
  row.querySelector('[name=closure-text]').value = closure.text ?? '';
  form.querySelector('#closures').append(row);
  return row;
}

// Every destination select offers the channel's queue or menu, the menu,
// closed, each queue and each named closure; a choice survives a rebuild.
function refreshRouting(form) {
  const closures = [...form.querySelectorAll('[name=closure-name]')].map((i) => i.value.trim()).filter(Boolean);
  const queues = [...form.querySelectorAll('[name=queue] option')].filter((o) => o.value);
  const choices = [
    ['open', say('to_open')], ['menu', say('to_menu')], ['closed', say('to_closed')],
    ...queues.map((o) => [`queue:${o.value}`, o.textContent]),
    ...closures.map((name) => [`closure:${name}`, say('to_closure', { name })]),
  ];
  for (const select of form.querySelectorAll('[name=route-to], [name=route-default]')) {
    const want = select.dataset.want ?? select.value;
    select.replaceChildren(...choices.map(([value, text]) => new Option(text, value)));
    if (!choices.some(([value]) => value === want)) select.append(new Option(want, want));
    select.value = want;
    delete select.dataset.want;
  }
  const routed = form.querySelectorAll('#routes > li').length > 0;
  form.querySelector('#route-default-row').hidden = !routed;
  for (const name of ['schedule.open', 'schedule.holidays']) form.querySelector(`[name="${name}"]`).disabled = routed;
  const note = form.querySelector('#routing-note');
  const pbx = form.querySelector('[name=pbx_routing]').dataset.following;
  note.hidden = !routed && !pbx;
  note.textContent = pbx ? say('routing_pbx', { entry: pbx }) : say('routing');
}

// The routes follow the PBX while a sync owns them: shown, not edited.
function lockRoutes(form) {
  for (const el of form.querySelectorAll('#routes *, [data-add-route], [name=route-default]')) {
    if ('disabled' in el) el.disabled = true;
  }
}

function readRouting(form, channel) {
  const rows = [...form.querySelectorAll('#routes > li')];
  const schedule = (channel.schedule ??= {});
  if (rows.length) {
    schedule.routes = rows.map((row) => {
      const all = lines(row.querySelector('[name=route-when]').value);
      const route = { to: destinationOf(row.querySelector('[name=route-to]').value) };
      const when = all.filter((l) => !HOLIDAY_LINE.test(l));
      const holidays = all.filter((l) => HOLIDAY_LINE.test(l));
      if (when.length) route.when = when;
      if (holidays.length) route.holidays = holidays;
      const kept = (channel.schedule.routes ?? []).find((r) => r.holidays_ics);
      if (kept && !when.length && !holidays.length) route.holidays_ics = kept.holidays_ics;
      return route;
    });
    schedule.default = destinationOf(form.querySelector('[name=route-default]').value);
    schedule.open = [];
    schedule.holidays = [];
  } else {
    delete schedule.routes;
    delete schedule.default;
  }
  const closures = {};
  for (const row of form.querySelectorAll('#closures > li')) {
    const name = row.querySelector('[name=closure-name]').value.trim();
    if (!name) continue;
    closures[name] = { alternatives: channel.closures?.[name]?.alternatives ?? [], text: row.querySelector('[name=closure-text]').value };
  }
  channel.closures = closures;
}

// The server's verdict in the page's language: "Closed at Sat … (Europe/Paris): …".
function explain({ open, local_time: at, timezone, reason, destination, next_open: next }) {
  const when = new Intl.DateTimeFormat(document.documentElement.lang, {
    timeZone: timezone, weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', timeZoneName: 'short',
  });
  const to = destinationText(destination);
  const kind = reason.kind === 'route' && reason.holiday !== undefined ? 'route_holiday' : reason.kind;
  const why = say(`hours_${kind}`, { n: reason.rule ?? reason.route, spec: reason.spec, label: reason.holiday, rules: reason.rules, routes: reason.routes, to });
  const text = say('hours', { state: say(open ? 'hours_open' : 'hours_closed'), time: when.format(new Date(at)), zone: timezone, reason: why });
  return next ? `${text} ${say('hours_next')} ${when.format(new Date(next))}` : text;
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
      status.textContent = refused(reply);
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
    if (!confirm(say('erase_confirm', { email: form.dataset.email }))) return;
    const done = await api('POST', '/api/v1/admin/visitors/erase', { email: form.dataset.email });
    form.querySelector('.status').textContent = done.status === 200 ? say('erased', done.body) : problem(done);
  });
}

// --- accounts: API tokens, users, tenants -----------------------------------
// A change that reloads the page says what it did there once reloaded.
function reloadSaying(id, text) {
  sessionStorage.setItem('console-flash', JSON.stringify({ id, text }));
  location.reload();
}
const flash = JSON.parse(sessionStorage.getItem('console-flash') ?? 'null');
sessionStorage.removeItem('console-flash');
if (flash && document.getElementById(flash.id)) document.getElementById(flash.id).textContent = flash.text;

const utc = (ms) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');

// Sends a form's fields (`names`) as JSON; `done` gets the answer's body.
function jsonForm(form, method, url, names, done) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(names.map((n) => [n, form.elements.namedItem(n).value]));
    const status = form.querySelector('.status');
    status.textContent = say('saving');
    const answer = await api(method, url, { ...form.dataset, ...body });
    showErrors(form, answer.status < 300 ? [] : answer.body?.fields ?? []);
    status.textContent = answer.status < 300 ? '' : refused(answer);
    if (answer.status < 300) done(answer.body, body);
  });
}

function tokenForm(form) {
  const box = document.getElementById('token-secret-box');
  const rows = document.querySelector('#tokens tbody');
  jsonForm(form, 'POST', '/api/v1/admin/tokens', ['name', 'role'], (token) => {
    // The secret, this once: it is not kept anywhere the page can find again.
    document.getElementById('token-secret').textContent = token.token;
    box.dataset.token = token.id;
    box.querySelector('.copied').textContent = '';
    box.hidden = false;
    form.querySelector('.status').textContent = say('token_created', token);
    const row = document.getElementById('token-row').content.firstElementChild.cloneNode(true);
    Object.assign(row.dataset, { token: token.id, name: token.name });
    const values = [token.name, form.elements.role.selectedOptions[0].text, utc(token.created_at), token.created_by];
    values.forEach((value, i) => { row.cells[i].textContent = value; });
    row.querySelector('.visually-hidden').textContent = ` ${token.name}`;
    rows.querySelector('[data-empty]')?.remove();
    rows.prepend(row);
    form.reset();
    document.getElementById('token-secret-title').focus();
  });
}

// The buttons of a row (a token, a user); each says what it did in `status`.
const ROW_ACTIONS = {
  revoke: { status: 'tokens-status', ask: 'token_revoke_confirm', done: 'token_revoked', method: 'DELETE', url: (r) => `/api/v1/admin/tokens/${r.dataset.token}` },
  deleteUser: { status: 'users-status', ask: 'user_delete_confirm', done: 'user_deleted', method: 'DELETE', url: (r) => `/api/v1/admin/users/${r.dataset.user}` },
  changeRole: { status: 'users-status', done: 'role_changed', method: 'PATCH', url: (r) => `/api/v1/admin/users/${r.dataset.user}` },
};
document.addEventListener('click', async (event) => {
  const button = event.target.closest('[data-revoke], [data-delete-user], [data-change-role]');
  if (!button) return;
  const kind = Object.keys(button.dataset).find((k) => k in ROW_ACTIONS);
  const action = ROW_ACTIONS[kind];
  const row = button.closest('tr');
  const { name } = row.dataset;
  if (action.ask && !confirm(say(action.ask, { name }))) return;
  const select = row.querySelector('[data-role]');
  const answer = await api(action.method, action.url(row), action.method === 'PATCH' ? { role: select.value } : undefined);
  const status = document.getElementById(action.status);
  if (answer.status >= 300) {
    status.textContent = problem(answer);
    return;
  }
  const role = select?.selectedOptions[0].text;
  status.textContent = say(action.done, { name, role });
  if (action.method === 'PATCH') {
    row.querySelector('[data-role-label]').textContent = role;
    return;
  }
  const box = document.getElementById('token-secret-box');
  if (box && box.dataset.token === row.dataset.token) box.hidden = true; // a secret shown for a revoked token
  row.remove();
  status.focus();
});

function userForm(form) {
  jsonForm(form, 'POST', '/api/v1/admin/users', ['username', 'password', 'role'], (_, { username }) =>
    reloadSaying('users-status', say('user_created', { name: username })));
}

function tenantForm(form) {
  jsonForm(form, 'POST', '/api/v1/admin/tenants', ['id', 'name'], (_, { id }) =>
    reloadSaying('tenants-status', say('tenant_created', { id })));
}

const form = document.querySelector('form[data-kind=channel]');
if (form) channelForm(form);
if (document.body.hasAttribute('data-preview-page')) previewPage();
for (const item of document.querySelectorAll('form[data-kind=queue], form[data-kind=agent]')) itemForm(item);
if (document.querySelector('[data-live]')) liveView();
const erase = document.querySelector('form[data-erase]');
if (erase) eraseForm(erase);
for (const [id, setup] of [['new-token', tokenForm], ['new-user', userForm], ['new-tenant', tenantForm]]) {
  const accountForm = document.getElementById(id);
  if (accountForm) setup(accountForm);
}
