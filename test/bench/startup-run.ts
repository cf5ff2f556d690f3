/**
 * `npm run bench:startup`: how long each command takes to answer `--help`, from process start to
 * exit, as an operator meets it: the built JavaScript (what an installed package runs) against the
 * TypeScript sources through tsx (a checkout). Each is run as a fresh `node bin/<command>.js
 * --help` process; the first runs warm the file cache and are not counted.
 *
 * Needs a build (`npm run build`), which it runs itself when dist/ is missing. Prints a Markdown
 * table for BENCHMARKS.md; exits 1 when a built command misses the target.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const COMMANDS = ['dmz-relay', 'dmz-pki', 'dmz-agent'] as const;
const WARMUP_RUNS = 3;
const MEASURED_RUNS = 20;
/** What an operator should wait for `--help` at most (issue 11). */
const TARGET_MS = 300;
/** One run never takes this long; a hang ends the benchmark instead of stalling it. */
const RUN_LIMIT_MS = 10_000;

type Variant = 'build' | 'tsx';

function runOnce(command: string, variant: Variant): Promise<number> {
  const env = { ...process.env, DMZ_RELAY_USE_BUILD: variant === 'build' ? '1' : '0' };
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(ROOT, 'bin', `${command}.js`), '--help'],
      { env, timeout: RUN_LIMIT_MS },
      (error) => {
        if (error !== null) reject(new Error(`${command} --help (${variant}) failed`, { cause: error }));
        else resolve(Number(process.hrtime.bigint() - started) / 1e6);
      },
    );
  });
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function measure(command: string, variant: Variant): Promise<{ median: number; p90: number }> {
  for (let run = 0; run < WARMUP_RUNS; run += 1) await runOnce(command, variant);
  const times: number[] = [];
  // One at a time: on two cores, parallel runs would measure each other.
  for (let run = 0; run < MEASURED_RUNS; run += 1) times.push(await runOnce(command, variant));
  times.sort((a, b) => a - b);
  return { median: quantile(times, 0.5), p90: quantile(times, 0.9) };
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, 'dist', 'relay', 'cli.js'))) {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  }
  const lines = [
    `\`--help\`, ${MEASURED_RUNS} runs each after ${WARMUP_RUNS} warm-up runs (Node ${process.version}):`,
    '',
    '| command | built JS median | built JS p90 | tsx median | tsx p90 |',
    '|---|---|---|---|---|',
  ];
  let missed = false;
  for (const command of COMMANDS) {
    const built = await measure(command, 'build');
    const tsx = await measure(command, 'tsx');
    if (built.p90 >= TARGET_MS) missed = true;
    lines.push(
      `| ${command} | ${built.median.toFixed(0)} ms | ${built.p90.toFixed(0)} ms | ${tsx.median.toFixed(0)} ms | ${tsx.p90.toFixed(0)} ms |`,
    );
  }
  const node = measureNode();
  lines.push('', `A bare \`node -e 0\` takes ${node.toFixed(0)} ms (median) on the same machine.`);
  process.stdout.write(`${lines.join('\n')}\n`);
  if (missed) {
    process.stderr.write(`bench:startup: a built command's p90 is ${TARGET_MS} ms or more\n`);
    process.exitCode = 1;
  }
}

function measureNode(): number {
  const times: number[] = [];
  for (let run = 0; run < MEASURED_RUNS; run += 1) {
    const started = process.hrtime.bigint();
    execFileSync(process.execPath, ['-e', '0'], { timeout: RUN_LIMIT_MS });
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return quantile(
    times.sort((a, b) => a - b),
    0.5,
  );
}

await main();
