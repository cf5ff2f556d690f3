// What a command runs. In a checkout (the TypeScript sources are here) it runs them through tsx, so
// an edit takes effect at once and a stale build never does; an installed package holds only the
// JavaScript that `npm run build` made in dist/ (package.json "files") and runs that, with no
// compiler at run time. DMZ_RELAY_USE_BUILD=1 runs the build from a checkout too (benchmarks).
import { existsSync } from 'node:fs';

/** Once a command has returned, a handle still open (a stdout nobody reads) gets this long. */
const EXIT_GRACE_MS = 2000;

/**
 * @param {string} program the command's name, for errors
 * @param {string} entry the module, relative to the package root, without extension ("pki/cli")
 * @param {string} exportName its run...Cli function
 */
export async function launch(program, entry, exportName) {
  const root = new URL('../', import.meta.url);
  const source = new URL(`${entry}.ts`, root);
  const built = new URL(`dist/${entry}.js`, root);
  const useBuild =
    process.env.DMZ_RELAY_USE_BUILD === '1' ||
    !existsSync(source) ||
    // A checkout installed without its dev dependencies (npm install --omit=dev) but built.
    (!(await registerTsx()) && existsSync(built));
  let cli;
  if (useBuild) {
    if (!existsSync(built)) {
      fail(
        program,
        `no build in ${new URL('dist/', root).pathname} (CLI_ERR_UNEXPECTED); run 'npm run build'`,
      );
    }
    cli = await importOrFail(program, built.href);
  } else {
    if (!tsxRegistered) {
      fail(
        program,
        "running from a checkout needs tsx (CLI_ERR_UNEXPECTED); run 'npm install' (with its dev dependencies), or 'npm run build'",
      );
    }
    // A developer's syntax error keeps its stack: only the installed program speaks in one line.
    cli = await import(source.href);
  }
  try {
    process.exitCode = await cli[exportName](process.argv.slice(2));
  } catch (error) {
    // run...Cli reports every failure itself; this is a bug, still told in one line.
    const message = error instanceof Error ? error.message : String(error);
    fail(program, `unexpected error: ${message} (CLI_ERR_UNEXPECTED); this is a bug: please report it`);
  }
  setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
}

let tsxRegistered = false;

/** Loads TypeScript through tsx (a development dependency); false when it is not installed. */
async function registerTsx() {
  try {
    const { register } = await import('tsx/esm/api');
    register();
    tsxRegistered = true;
  } catch {
    tsxRegistered = false;
  }
  return tsxRegistered;
}

/** A missing dependency (an install cut short) is told in one line too. */
async function importOrFail(program, href) {
  try {
    return await import(href);
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return fail(program, `cannot load the program: ${message} (CLI_ERR_UNEXPECTED); reinstall the package`);
  }
}

function fail(program, line) {
  process.stderr.write(`${program}: ${line}\n`);
  process.exit(1);
}
