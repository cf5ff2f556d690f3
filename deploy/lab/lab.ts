/**
 * The three-zone lab (issue 10): the zones built (zones.ts), each host's shipped ruleset loaded
 * (firewalls.ts), the product running on them (plant.ts). test/system/lab.test.ts (`npm run
 * test:lab`) starts it and proves the network claims with the tools an auditor would use.
 *
 * Needs root (network namespaces, nftables, nmap's raw sockets). Whatever it made goes at the end
 * and on any failure or signal: every process in its namespaces, then the namespaces. A lab that a
 * SIGKILL stopped is cleared by the next run, which finds its namespaces by their prefix and its
 * lock file's pid dead.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTool } from '../../test/support/system-tools.ts';
import { pymodbusMissing } from '../../test/support/pymodbus-device.ts';
import { applyFirewalls } from './firewalls.ts';
import { startPlant, type LabPlant } from './plant.ts';
import { buildZones, labNamespaces, removeZones } from './zones.ts';

/** Which lab runs: its pid. One lab at a time, since the namespaces have fixed names. */
const LOCK_FILE = join(tmpdir(), 'dmz-lab.pid');
/** The tools the lab drives, and the Debian package of each. */
const TOOLS = {
  ip: 'iproute2',
  nft: 'nftables',
  nmap: 'nmap',
  ss: 'iproute2',
  curl: 'curl',
  openssl: 'openssl',
  timeout: 'coreutils',
} as const;
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

/** Why the lab cannot run here, or undefined when it can. */
export function labProblem(): string | undefined {
  if (process.getuid?.() !== 0)
    return 'the lab needs root (network namespaces, nftables, raw sockets for nmap)';
  for (const [tool, debianPackage] of Object.entries(TOOLS)) {
    if (findTool(tool) === undefined) return `${tool} is not installed (apt-get install ${debianPackage})`;
  }
  const pymodbus = pymodbusMissing();
  if (pymodbus !== undefined) return pymodbus;
  const probe = spawnSync('ip', ['netns', 'add', 'dmzlab-probe'], { encoding: 'utf8' });
  if (probe.status !== 0) return `cannot make a network namespace here: ${probe.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', 'dmzlab-probe']);
  return undefined;
}

export interface Lab {
  readonly dir: string;
  readonly plant: LabPlant;
  /** Stops the processes (SIGTERM, then SIGKILL), removes the namespaces; keeps `dir` if asked. */
  stop(options: { keepDir: boolean }): Promise<void>;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock; clears what a lab stopped by SIGKILL left behind. */
async function takeLock(): Promise<void> {
  const holder = Number(await readFile(LOCK_FILE, 'utf8').catch(() => ''));
  if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && pidAlive(holder)) {
    throw new Error(`another lab runs (pid ${holder}, ${LOCK_FILE}): one at a time`);
  }
  if (labNamespaces().length > 0) removeZones();
  await writeFile(LOCK_FILE, `${process.pid}\n`);
}

function releaseLock(): void {
  rmSync(LOCK_FILE, { force: true });
}

/** The trap: whatever ends this process, the lab's namespaces and processes go with it. */
function clearAtExit(): () => void {
  const onExit = () => {
    removeZones();
    releaseLock();
  };
  const onSignal = (signal: keyof typeof SIGNAL_EXIT) => () => {
    onExit();
    process.exit(SIGNAL_EXIT[signal]);
  };
  const handlers = { SIGINT: onSignal('SIGINT'), SIGTERM: onSignal('SIGTERM') };
  process.once('exit', onExit);
  process.once('SIGINT', handlers.SIGINT);
  process.once('SIGTERM', handlers.SIGTERM);
  return () => {
    process.off('exit', onExit);
    process.off('SIGINT', handlers.SIGINT);
    process.off('SIGTERM', handlers.SIGTERM);
  };
}

export async function startLab(): Promise<Lab> {
  await takeLock();
  const untrap = clearAtExit();
  const dir = await mkdtemp(join(tmpdir(), 'dmz-lab-'));
  const clear = async (keepDir: boolean) => {
    removeZones();
    releaseLock();
    untrap();
    if (!keepDir) await rm(dir, { recursive: true, force: true });
  };
  try {
    await buildZones();
    await applyFirewalls(dir);
    const plant = await startPlant(dir);
    return {
      dir,
      plant,
      stop: async ({ keepDir }) => {
        await Promise.all([plant.ot.stop(), plant.it.stop()]);
        await Promise.all([plant.relay.stop(), plant.modbus.stop()]);
        await clear(keepDir);
      },
    };
  } catch (error) {
    await clear(true);
    throw new Error(`the lab did not start (its files are kept in ${dir}): ${(error as Error).message}`, {
      cause: error,
    });
  }
}
