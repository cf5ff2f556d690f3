/**
 * `npm run bench:attack`: the relay under the two attacks of issue 12, in one run, on loopback.
 *
 *   node --import tsx test/bench/attack-run.ts [--json]
 *
 * A: a TLS handshake flood on the agent port (ffdhe8192, then X25519) while an honest OT -> IT
 * pair runs. B: `dmz-pki revoke` while a slow client holds the enrollment port. The relay is the
 * production `dmz-relay` in a child process, with a CA made by `dmz-pki init`.
 *
 * Prints the tables on stdout (progress on stderr). Exits 0 whatever the relay did (a benchmark
 * reports; tests assert), 1 if a scenario failed to run, 2 on bad arguments. Every child process
 * and the temporary directory are removed on the way out, whatever happened.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAttackReport, formatAttackReport, listAttackFailures } from './attack-report.ts';
import { ATTACK_RUN_TIME_LIMIT_MS } from './attack-settings.ts';
import { runFloodScenario } from './flood-scenario.ts';
import { PkiCli } from './pki-cli.ts';
import { ChildProcessGroup } from './processes.ts';
import { runRevocationScenario } from './revocation-scenario.ts';
import { attempt } from './stats.ts';

const USAGE = 'usage: npm run bench:attack -- [--json]';
const TRUST_DOMAIN = 'bench.plant';

function parseOptions(args: readonly string[]): { json: boolean } | string {
  let json = false;
  for (const arg of args) {
    if (arg === '--json') json = true;
    else if (arg === '--help' || arg === '-h') return USAGE;
    else return `unknown argument ${arg}\n${USAGE}`;
  }
  return { json };
}

function progress(message: string): void {
  process.stderr.write(`bench:attack: ${message}\n`);
}

async function main(json: boolean): Promise<number> {
  const loadAverageAtStart = loadavg()[0] ?? 0;
  const workDir = await mkdtemp(join(tmpdir(), 'dmz-bench-attack-'));
  const group = new ChildProcessGroup();
  // Runs on every way out, including process.exit() and an uncaught exception that skips `finally`.
  process.once('exit', () => {
    group.killAllNow();
    rmSync(workDir, { recursive: true, force: true });
  });
  const watchdog = setTimeout(() => {
    progress(`run exceeded ${ATTACK_RUN_TIME_LIMIT_MS / 1000} s: stopping everything`);
    process.exit(1);
  }, ATTACK_RUN_TIME_LIMIT_MS);
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  try {
    progress('creating the CA with dmz-pki init');
    const cli = new PkiCli(group, join(workDir, 'relay-state'), TRUST_DOMAIN);
    const ready = await attempt(() => cli.init());
    const notRun = { ok: false, error: ready.ok ? '' : `dmz-pki init: ${ready.error}` } as const;
    const handshakeFlood = ready.ok
      ? await attempt(() => runFloodScenario(group, workDir, cli, progress))
      : notRun;
    const revocation = ready.ok
      ? await attempt(() => runRevocationScenario(group, workDir, cli, progress))
      : notRun;
    const report = buildAttackReport(handshakeFlood, revocation, loadAverageAtStart);
    // A measurement that did not happen within its bound is undefined: null in JSON, not a missing key.
    const text = json
      ? JSON.stringify(report, (_key, value: unknown) => value ?? null, 2)
      : formatAttackReport(report);
    process.stdout.write(`${text}\n`);
    return listAttackFailures(report).length === 0 ? 0 : 1;
  } finally {
    clearTimeout(watchdog);
    await group.stopAll();
    await rm(workDir, { recursive: true, force: true });
  }
}

const options = parseOptions(process.argv.slice(2));
if (typeof options === 'string') {
  (options === USAGE ? process.stdout : process.stderr).write(`${options}\n`);
  process.exit(options === USAGE ? 0 : 2);
}
main(options.json).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `bench:attack failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
