// Loader: the only code that runs on the host page at parse time. It reads
// its settings from its own <script> tag, defines the single global
// `window.Frontdesk`, and mounts the widget once the DOM exists. Loaded with
// `async`, it never blocks the page. With `data-preview` (the console's
// channel editor) the widget renders what `Frontdesk.preview(channel,
// pageLang)` hands it and opens nothing on the network (preview.js).

import { mountWidget } from './app.js';

const VERSION = '0.1.0';

(() => {
  if (window.Frontdesk && window.Frontdesk.version) return; // snippet pasted twice
  const script =
    document.currentScript ||
    [...document.querySelectorAll('script[src][data-key]')].find((s) => /\/widget\.js([?#]|$)/.test(s.src));
  const key = script && script.dataset.key;
  const preview = !!script && script.hasAttribute('data-preview');
  const waiters = [];
  let widget = null;
  const call = (fn) => (widget ? fn(widget) : waiters.push(fn));
  window.Frontdesk = {
    version: VERSION,
    open: () => call((w) => w.open()),
    close: () => call((w) => w.close()),
  };
  if (preview) window.Frontdesk.preview = (channel, pageLang) => call((w) => w.preview(channel, pageLang));
  if (!key) {
    console.error('Frontdesk: the <script> tag needs data-key="CHANNEL_KEY".');
    return;
  }
  const start = () => {
    widget = mountWidget({ key, base: new URL(script.src).origin, lang: script.dataset.lang, css: __CSS__, preview });
    waiters.splice(0).forEach((fn) => fn(widget));
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, { once: true });
  else start();
})();
