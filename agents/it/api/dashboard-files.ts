/**
 * The dashboard's files, read once at start and served from memory: the page, its script and
 * style (agents/it/api/dashboard/, copied next to the build by `npm run build`), and uPlot from
 * its npm package. Nothing is fetched from another host; the Content-Security-Policy says so to
 * the browser as well.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export interface DashboardFile {
  readonly type: string;
  readonly body: Buffer;
}

/** Scripts, styles and API calls from this origin only; no frames, no plugins, no inline code. */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const OWN_FILES = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
} as const;

/** The files by the name the page asks for (`/dashboard/<name>`; `/` is index.html). */
export async function loadDashboardFiles(): Promise<ReadonlyMap<string, DashboardFile>> {
  const here = join(import.meta.dirname, 'dashboard');
  const files = new Map<string, DashboardFile>();
  for (const [name, type] of Object.entries(OWN_FILES)) {
    files.set(name, { type, body: await readFile(join(here, name)) });
  }
  const require = createRequire(import.meta.url);
  files.set('uPlot.min.js', {
    type: 'text/javascript; charset=utf-8',
    body: await readFile(require.resolve('uplot/dist/uPlot.iife.min.js')),
  });
  files.set('uPlot.min.css', {
    type: 'text/css; charset=utf-8',
    body: await readFile(require.resolve('uplot/dist/uPlot.min.css')),
  });
  return files;
}
