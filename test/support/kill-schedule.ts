/**
 * Chaos for system tests: every target process is killed -9 again and again, each by a loop of its
 * own (so outages overlap: the relay can be down while an agent restarts), and started again after
 * a short pause. Each kill lands either while the process is still starting (module loading, lock
 * take-over, log recovery) or at a random moment once it says it is working, so both the crash
 * paths of a start and those of steady work are hit. Every random choice comes from a generator
 * seeded per target from one seed, so a seed repeats a schedule's choices (the timing of processes
 * still varies with the machine's load). Every wait is bounded.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { mulberry32 } from '../../agents/ot/sources/signals.ts';
import type { KillableProcess } from './killable-process.ts';
import { waitFor } from './wait.ts';

export interface KillTarget {
  readonly process: KillableProcess;
  /** What the process writes to stderr once it does its job. */
  readonly readyLine: string;
}

export interface KillPlan {
  /** Kills of each target at least, and the chaos lasts `minDurationMs` at least. */
  readonly killsEach: number;
  readonly minDurationMs: number;
  /** Kills of each target at most, whatever the clock does. */
  readonly maxKillsEach: number;
  /** The share of kills that wait for the process to be working first. */
  readonly workingShare: number;
  /** How long after the start (still starting) or after the ready line (working) a kill comes. */
  readonly startingMs: readonly [number, number];
  readonly workingMs: readonly [number, number];
  readonly restartPauseMs: readonly [number, number];
  /** A process that is not working this long after its start did not come back: a failure. */
  readonly readyBoundMs: number;
}

export interface Kill {
  /** ms since the chaos began. */
  readonly atMs: number;
  readonly process: string;
  readonly pid: number;
  readonly incarnation: number;
  /** How long the incarnation had run, and whether it was working (had written its ready line). */
  readonly upMs: number;
  readonly working: boolean;
  readonly pauseMs: number;
}

export interface KillOptions {
  readonly seed: number;
  /** Called before every step; throws to end the chaos (a process that died by itself). */
  readonly check: () => void;
  readonly onKill: (kill: Kill) => void;
}

/** Runs the chaos until every target had its kills and the time is up; every target runs at the end. */
export async function killRepeatedly(
  targets: readonly KillTarget[],
  plan: KillPlan,
  options: KillOptions,
): Promise<Kill[]> {
  const kills: Kill[] = [];
  const start = Date.now();
  const stop = new AbortController();
  const loop = async (target: KillTarget, index: number) => {
    // One generator per target, so the targets' choices do not depend on how their loops interleave.
    const random = mulberry32((options.seed + index * 0x9e37_79b9) >>> 0);
    const { process: child } = target;
    for (let count = 0; count < plan.maxKillsEach; count++) {
      if (count >= plan.killsEach && Date.now() - start >= plan.minDurationMs) return;
      const working = random() < plan.workingShare;
      const incarnation = child.incarnations.at(-1);
      if (incarnation === undefined) throw new Error(`${child.name} was never started`);
      await waitFor(
        () => {
          options.check();
          return stop.signal.aborted || !working || child.stderrIncludes(target.readyLine);
        },
        `${child.name} (pid ${incarnation.pid}) working again: "${target.readyLine}"`,
        plan.readyBoundMs,
        50,
      );
      await delay(between(random, working ? plan.workingMs : plan.startingMs), undefined, {
        signal: stop.signal,
      });
      options.check();
      const wasWorking = child.stderrIncludes(target.readyLine);
      await child.kill();
      const kill: Kill = {
        atMs: Date.now() - start,
        process: child.name,
        pid: incarnation.pid,
        incarnation: incarnation.number,
        upMs: Date.now() - incarnation.startedAt,
        working: wasWorking,
        pauseMs: between(random, plan.restartPauseMs),
      };
      kills.push(kill);
      options.onKill(kill);
      await delay(kill.pauseMs, undefined, { signal: stop.signal });
      child.start();
    }
  };
  await Promise.all(
    targets.map((target, index) =>
      loop(target, index).catch((error: unknown) => {
        // One loop failing ends the others: none starts a process again after this.
        stop.abort();
        throw error;
      }),
    ),
  );
  return kills.sort((a, b) => a.atMs - b.atMs);
}

function between(random: () => number, [low, high]: readonly [number, number]): number {
  return Math.round(low + random() * (high - low));
}
