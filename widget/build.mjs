// Builds dist/widget.js (one minified IIFE with the CSS inlined) with esbuild.
// `node build.mjs --check` rebuilds into a temporary directory, fails if the
// committed dist/ differs (stale build) or if what a first open needs is over
// the 30 KB gzip budget, and prints the gzip size either way.
import { build } from 'esbuild';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const BUDGET = 30 * 1024;
const check = process.argv.includes('--check');
const out = check ? mkdtempSync(join(tmpdir(), 'frontdesk-widget-')) : join(here, 'dist');
mkdirSync(out, { recursive: true });

const css = await build({
  entryPoints: [join(here, 'src/style.css')],
  bundle: true,
  minify: true,
  write: false,
  logLevel: 'error',
});
await build({
  entryPoints: [join(here, 'src/index.js')],
  outfile: join(out, 'widget.js'),
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020', 'chrome90', 'firefox90', 'safari15'],
  define: { __CSS__: JSON.stringify(css.outputFiles[0].text.trim()) },
  legalComments: 'none',
  charset: 'utf8',
  logLevel: 'error',
});

let failed = false;
let total = 0;
for (const f of readdirSync(out).sort()) {
  const bytes = readFileSync(join(out, f));
  const gz = gzipSync(bytes, { level: 9 }).length;
  total += gz;
  console.log(`${f}: ${bytes.length} bytes, ${gz} bytes gzip`);
  if (check) {
    let committed = null;
    try {
      committed = readFileSync(join(here, 'dist', f));
    } catch (e) {
      committed = null;
    }
    if (!committed || !committed.equals(bytes)) {
      console.error(`STALE: dist/${f} differs from a fresh build; run \`npm run build\` in widget/ and commit dist/.`);
      failed = true;
    }
  }
}
console.log(`first open total: ${total} bytes gzip (budget ${BUDGET})`);
if (total > BUDGET) {
  console.error('OVER BUDGET: the widget needs more than 30 KB gzip for a first open.');
  failed = true;
}
if (check) rmSync(out, { recursive: true, force: true });
if (failed) process.exit(1);
