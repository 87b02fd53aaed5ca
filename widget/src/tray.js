// The file tray (spec F1, F2, E2, E3): picked files wait in a review list
// (name, size, Remove) until Send; then each uploads in its own request, with
// progress and Cancel upload, and a failed one keeps Retry. A sent file comes
// back as a message; the chat screen shows it with a Download button.

import { h, nextId, uuid } from './dom.js';
import { formatSize } from './i18n.js';
import { review } from './files.js';

/**
 * ctx: t(), lang(), limits(), setError(text | null), errorText(e),
 * upload(file, batch, id, onProgress) -> { promise, abort },
 * sent(message, file), focusComposer().
 */
export function createTray(ctx) {
  const files = []; // { file, id, batch, state: ready|uploading|failed, progress, error, up, node }
  const list = h('ul', { class: 'tray' });

  function pick(picked) {
    const t = ctx.t();
    const r = review(files.length, picked, ctx.limits());
    const problems = r.tooMany ? [t('tooManyFiles', { n: r.tooMany })] : r.tooBig.map((f) => t('fileTooBig', { name: f.name, size: formatSize(ctx.lang(), r.maxBytes) }));
    ctx.setError(problems.join(' ') || null);
    for (const file of r.add) {
      const f = { file, id: uuid(), state: 'ready', progress: 0 };
      files.push(f);
      paint(f);
    }
  }

  function paint(f) {
    const t = ctx.t();
    const nameId = f.nameId || (f.nameId = nextId('file'));
    const name = h('span', { class: 'fname', id: nameId, text: f.file.name });
    const btn = (key, onclick) => h('button', { class: 'link', type: 'button', text: t(key), 'aria-describedby': nameId, onclick });
    const busy = f.state === 'uploading';
    const node = h('li', { class: 'file', 'data-state': f.state },
      h('p', null, name, h('span', { class: 'fsize', text: formatSize(ctx.lang(), f.file.size) })),
      busy ? h('progress', { max: '100', value: String(Math.round(f.progress * 100)), 'aria-labelledby': nameId }) : null,
      f.state === 'failed' ? h('p', { class: 'warn', text: f.error }) : null,
      h('p', { class: 'acts' },
        busy ? btn('cancelUpload', () => cancel(f)) : btn('remove', () => drop(f, true)),
        f.state === 'failed' ? btn('retry', () => upload(f)) : null));
    if (f.node && f.node.parentNode === list) list.replaceChild(node, f.node);
    else list.append(node);
    f.node = node;
  }

  function drop(f, refocus) {
    const i = files.indexOf(f);
    if (i >= 0) files.splice(i, 1);
    if (f.node) f.node.remove();
    if (!files.some((x) => x.state === 'failed')) ctx.setError(null);
    if (refocus) ctx.focusComposer();
  }

  function cancel(f) {
    if (f.up) f.up.abort();
    drop(f, true);
  }

  /** Uploads every file still waiting, as one batch. */
  function sendAll() {
    const batch = uuid();
    for (const f of files.filter((x) => x.state === 'ready')) {
      f.batch = batch;
      upload(f);
    }
  }

  async function upload(f) {
    f.state = 'uploading';
    f.progress = 0;
    paint(f);
    f.up = ctx.upload(f.file, f.batch || uuid(), f.id, (p) => {
      f.progress = p;
      const bar = f.node.querySelector('progress');
      if (bar) bar.value = Math.round(p * 100);
    });
    try {
      const m = await f.up.promise;
      drop(f, false);
      ctx.sent(m, f.file);
    } catch (e) {
      if (e.code === 'aborted') return;
      f.state = 'failed';
      f.error = errorText(e, f.file.name);
      ctx.setError(f.error);
      paint(f);
    } finally {
      f.up = null;
    }
  }

  function errorText(e, name) {
    const t = ctx.t();
    const b = e.body || {};
    const limits = ctx.limits();
    if (e.code === 'file_too_large') return t('fileTooBig', { name, size: formatSize(ctx.lang(), b.limit_bytes || limits.max_file_bytes) });
    if (e.code === 'too_many_files') return t('tooManyFiles', { n: b.limit || limits.max_files_per_batch });
    if (e.code === 'file_type_not_allowed') return t('fileType', { name });
    if (e.code === 'conversation_files_full') return t('filesFull');
    if (e.code === 'storage_full') return t('storageFull', { name });
    if (e.code === 'network' || e.code === 'internal' || e.status >= 500) return t('errFile', { name });
    return ctx.errorText(e);
  }

  return {
    list,
    pick,
    sendAll,
    relabel() {
      list.setAttribute('aria-label', ctx.t()('filesToSend'));
      for (const f of files) paint(f);
    },
    /** Forgets every file, aborting uploads (the conversation is forgotten). */
    clear() {
      for (const f of files.splice(0)) if (f.up) f.up.abort();
      list.replaceChildren();
    },
  };
}
