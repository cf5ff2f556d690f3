/**
 * A program a system test kills with SIGKILL and starts again, as a crash and a supervisor's
 * restart would: every incarnation writes its stdout and stderr to files of its own (kept for
 * diagnosis, and complete even after a kill, since the child writes them itself), an exit the test
 * did not cause is recorded, and every wait is bounded.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exited, KILL_BOUND_MS, spawnChild, stopChild } from './child-processes.ts';

/** A process that ignores SIGTERM this long gets SIGKILL (the agent's own stop bound is 15 s). */
const STOP_GRACE_MS = 20_000;

export interface Incarnation {
  /** 1 for the first start, 2 for the first restart, ... */
  readonly number: number;
  readonly pid: number;
  readonly startedAt: number;
  readonly stderrFile: string;
  /** Set when it exited, by SIGKILL from this test or otherwise. */
  exit: { readonly code: number | null; readonly signal: NodeJS.Signals | null } | undefined;
  /** The test killed (or stopped) it: its exit is expected. */
  ended: boolean;
}

export class KillableProcess {
  readonly name: string;
  readonly #args: readonly string[];
  readonly #logDir: string;
  readonly #launcher: readonly [string, ...string[]];
  readonly #incarnations: Incarnation[] = [];
  #child: ChildProcess | undefined;

  /**
   * Runs `node <args>`, or `<launcher> <args>` (the lab's `ip netns exec NS node`, which execs in
   * the same process, so signals still reach the program); logs go to
   * `<logDir>/<name>.<incarnation>.stdout|stderr`.
   */
  constructor(
    name: string,
    args: readonly string[],
    logDir: string,
    launcher: readonly [string, ...string[]] = [process.execPath],
  ) {
    this.name = name;
    this.#args = args;
    this.#logDir = logDir;
    this.#launcher = launcher;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  get incarnations(): readonly Incarnation[] {
    return this.#incarnations;
  }

  /** The first incarnation that exited without this test ending it. */
  unexpectedExit(): Incarnation | undefined {
    return this.#incarnations.find((incarnation) => incarnation.exit !== undefined && !incarnation.ended);
  }

  start(): Incarnation {
    if (this.#child !== undefined) throw new Error(`${this.name} is running already`);
    const number = this.#incarnations.length + 1;
    const base = join(this.#logDir, `${this.name}.${number}`);
    const stdout = openSync(`${base}.stdout`, 'w');
    const stderr = openSync(`${base}.stderr`, 'w');
    let child: ChildProcess;
    try {
      const [command, ...prefix] = this.#launcher;
      child = spawnChild(command, [...prefix, ...this.#args], { stdio: ['ignore', stdout, stderr] });
    } finally {
      closeSync(stdout);
      closeSync(stderr);
    }
    if (child.pid === undefined) throw new Error(`${this.name} did not start`);
    const incarnation: Incarnation = {
      number,
      pid: child.pid,
      startedAt: Date.now(),
      stderrFile: `${base}.stderr`,
      exit: undefined,
      ended: false,
    };
    this.#incarnations.push(incarnation);
    this.#child = child;
    child.once('exit', (code, signal) => {
      incarnation.exit = { code, signal };
      if (this.#child === child) this.#child = undefined;
    });
    return incarnation;
  }

  /** kill -9, and wait until it is gone. */
  async kill(): Promise<Incarnation> {
    const child = this.#child;
    const incarnation = this.#incarnations.at(-1);
    if (child === undefined || incarnation === undefined) throw new Error(`${this.name} is not running`);
    incarnation.ended = true;
    child.kill('SIGKILL');
    if (!(await exited(child, KILL_BOUND_MS))) {
      throw new Error(`${this.name} (pid ${incarnation.pid}) still runs ${KILL_BOUND_MS} ms after SIGKILL`);
    }
    return incarnation;
  }

  /** SIGTERM, as a supervisor stops it; SIGKILL after a grace. Resolves with how it exited. */
  async stop(): Promise<Incarnation['exit']> {
    const child = this.#child;
    const incarnation = this.#incarnations.at(-1);
    if (child === undefined || incarnation === undefined) return incarnation?.exit;
    incarnation.ended = true;
    await stopChild(child, STOP_GRACE_MS);
    return incarnation.exit;
  }

  /** Last resort (an `after` hook): SIGKILL without waiting. */
  killNow(): void {
    const incarnation = this.#incarnations.at(-1);
    if (incarnation !== undefined) incarnation.ended = true;
    this.#child?.kill('SIGKILL');
  }

  /** The last `lines` lines of an incarnation's stderr (the latest one by default). */
  stderrTail(lines = 15, incarnation = this.#incarnations.at(-1)): string {
    return readStderr(incarnation).trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Whether an incarnation (the latest by default) has written `text` to its stderr so far. */
  stderrIncludes(text: string, incarnation = this.#incarnations.at(-1)): boolean {
    return readStderr(incarnation).includes(text);
  }
}

function readStderr(incarnation: Incarnation | undefined): string {
  if (incarnation === undefined) return '';
  try {
    return readFileSync(incarnation.stderrFile, 'utf8');
  } catch {
    return '';
  }
}
