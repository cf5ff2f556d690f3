/**
 * The two measurements of `npm run bench:runtime` that run the real agents: a steady step (the
 * simulator at one rate, end to end into the IT agent's sink, over a timed window) and a replay
 * catch-up (the IT agent stopped for an outage at a steady live rate, then started again, timed
 * until it is live again). Every step starts both agents on fresh state (log, sink, cursors), so
 * one step's backlog never reaches the next.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentStatus } from '../../agents/runtime/status.ts';
import type { AgentChild, RuntimePlant } from './runtime-plant.ts';
import {
  cpuBetween,
  ratePerSecond,
  sample,
  SAMPLE_INTERVAL_MS,
  sleep,
  timeWindow,
  type CpuShare,
  type Sample,
} from './runtime-samples.ts';
import { SIMULATOR_INTERVAL_MS, type RuntimeTiming } from './runtime-options.ts';

/** The longest an agent may take from its start-up line to a link with the relay. */
const CONNECT_TIMEOUT_MS = 30_000;
/** A step keeps up when the log and the sink both take at least this share of the offered rate. */
const SUSTAINED_FRACTION = 0.95;
/**
 * Running live, the sink is up to one batch period behind the log (the simulator writes a point's
 * readings once per batch) plus the path's own latency; allowing a second for that, a consumer at
 * most this far behind is live.
 */
const LIVE_SLACK_MS = 1_000;

/** One simulator load: `points` points, one reading each per SIMULATOR_INTERVAL_MS, `batch` a write. */
export interface LoadShape {
  readonly points: number;
  readonly batch: number;
}

export function offeredRate(shape: LoadShape): number {
  return (shape.points * 1000) / SIMULATOR_INTERVAL_MS;
}

export interface SteadyStep {
  readonly shape: LoadShape;
  readonly offered: number;
  readonly windowSeconds: number;
  /** Points/s appended durably to the OT log, sent live, and held durably by the IT sink. */
  readonly logged: number;
  readonly sentLive: number;
  readonly inSink: number;
  /** How far the sink was behind the log at the end of the window, in seconds of the offered rate. */
  readonly behindSeconds: number;
  readonly logBytesPerPoint: number;
  readonly sinkBytesPerPoint: number;
  readonly cpu: CpuShare;
  readonly sustained: boolean;
}

/**
 * A step's durable end-to-end rate: what the log took, as far as the sink kept up with it. The
 * sink alone can be above the offered rate while it drains what was logged before its session.
 */
export function endToEndRate(step: SteadyStep): number {
  return Math.min(step.logged, step.inSink);
}

export interface CatchUp {
  readonly shape: LoadShape;
  readonly outageSeconds: number;
  /** The live rate into the sink before the outage, measured over a window like a steady step's. */
  readonly liveRate: number;
  /** Points the log held beyond the sink when the IT agent's link was up again. */
  readonly backlogAtRestart: number;
  /** Seconds from the spawn of the IT process to its link. */
  readonly startSeconds: number;
  /** Seconds from its link to being live again; undefined when the bound passed first. */
  readonly catchUpSeconds: number | undefined;
  /** Points/s into the sink over those seconds (the backlog and what was logged meanwhile). */
  readonly catchUpRate: number | undefined;
  readonly cpu: CpuShare | undefined;
}

export interface StepDirs {
  readonly ot: string;
  readonly it: string;
  readonly sink: string;
}

type AgentConfigFields = { readonly state: string } & Record<string, unknown>;

function otConfig(dir: string, shape: LoadShape): AgentConfigFields {
  return {
    state: dir,
    ot: {
      sources: [
        {
          type: 'simulator',
          name: 'bench',
          interval: `${SIMULATOR_INTERVAL_MS}ms`,
          batch: shape.batch,
          generate: { count: shape.points, signal: 'sine', period: '10s', min: 0, max: 100 },
        },
      ],
    },
  };
}

function itConfig(dirs: StepDirs, otName: string): AgentConfigFields {
  return {
    state: dirs.it,
    it: {
      sinks: [{ name: 'files', type: 'jsonl', dir: dirs.sink }],
      consume: [{ from: otName, sink: 'files' }],
    },
  };
}

/** Points the log holds that the sink does not; `earlier`: points the sink held before this IT process. */
function backlog(current: Sample, earlier = 0): number {
  return current.ot.pointsLogged - (earlier + current.it.pointsWritten);
}

function liveThreshold(shape: LoadShape): number {
  return offeredRate(shape) * ((shape.batch * SIMULATOR_INTERVAL_MS + LIVE_SLACK_MS) / 1000);
}

/** Samples until the sink is live; undefined if `boundMs` passes first. */
async function waitUntilLive(
  plant: RuntimePlant,
  ot: AgentChild,
  it: AgentChild,
  shape: LoadShape,
  boundMs: number,
  earlier = 0,
): Promise<Sample | undefined> {
  const deadline = performance.now() + boundMs;
  for (;;) {
    const current = await sample(plant, ot, it);
    if (backlog(current, earlier) <= liveThreshold(shape)) return current;
    if (performance.now() > deadline) return undefined;
    await sleep(SAMPLE_INTERVAL_MS);
  }
}

async function startPair(
  plant: RuntimePlant,
  dirs: StepDirs,
  shape: LoadShape,
  label: string,
): Promise<{ readonly ot: AgentChild; readonly it: AgentChild }> {
  // Both at once: the IT agent's session opens as soon as the OT agent is there, so the backlog
  // the first replay round must fetch is a second or two, not the IT agent's whole start-up.
  const [ot, it] = await Promise.allSettled([
    plant.startAgent('ot', `ot-${label}`, otConfig(dirs.ot, shape)),
    plant.startAgent('it', `it-${label}`, itConfig(dirs, plant.otName)),
  ]);
  if (ot.status === 'rejected' || it.status === 'rejected') {
    if (ot.status === 'fulfilled') await ot.value.stop().catch(() => undefined);
    if (it.status === 'fulfilled') await it.value.stop().catch(() => undefined);
    throw ot.status === 'rejected' ? ot.reason : (it as PromiseRejectedResult).reason;
  }
  try {
    await Promise.all([
      ot.value.waitUntilConnected(CONNECT_TIMEOUT_MS),
      it.value.waitUntilConnected(CONNECT_TIMEOUT_MS),
    ]);
  } catch (error) {
    await stopPair(ot.value, it.value).catch(() => undefined);
    throw error;
  }
  return { ot: ot.value, it: it.value };
}

/** Stops both agents; their last status files. */
async function stopPair(
  ot: AgentChild,
  it: AgentChild,
): Promise<{ readonly ot: AgentStatus; readonly it: AgentStatus }> {
  const [otStatus, itStatus] = await Promise.all([ot.stop(), it.stop()]);
  return { ot: otStatus, it: itStatus };
}

async function dataFileBytes(sinkDir: string): Promise<number> {
  let bytes = 0;
  for (const name of await readdir(sinkDir)) {
    if (name.endsWith('.jsonl')) bytes += (await stat(join(sinkDir, name))).size;
  }
  return bytes;
}

function pointsWrittenOf(status: AgentStatus): number {
  return (status.it?.consumers ?? []).reduce((sum, consumer) => sum + consumer.pointsWritten, 0);
}

/** One step of the rate search. */
export async function measureSteady(
  plant: RuntimePlant,
  dirs: StepDirs,
  shape: LoadShape,
  timing: RuntimeTiming,
  label: string,
): Promise<SteadyStep> {
  const offered = offeredRate(shape);
  const { ot, it } = await startPair(plant, dirs, shape, label);
  let window: readonly Sample[];
  try {
    // The first round replays what was logged before the IT session opened; a step that cannot
    // even catch up with that is measured anyway (and falls short).
    await waitUntilLive(plant, ot, it, shape, timing.settleMs);
    window = await timeWindow(plant, ot, it, timing);
  } catch (error) {
    await stopPair(ot, it).catch(() => undefined);
    throw error;
  }
  const final = await stopPair(ot, it);
  const first = window[0]!;
  const last = window.at(-1)!;
  const logged = ratePerSecond(window, (item) => item.ot.pointsLogged);
  const inSink = ratePerSecond(window, (item) => item.it.pointsWritten);
  const otLog = final.ot.ot;
  return {
    shape,
    offered,
    windowSeconds: (last.at - first.at) / 1000,
    logged,
    sentLive: ratePerSecond(window, (item) => item.ot.pointsSent),
    inSink,
    behindSeconds: backlog(last) / offered,
    logBytesPerPoint: otLog === undefined ? Number.NaN : otLog.log.bytes / otLog.pointsLogged,
    sinkBytesPerPoint: (await dataFileBytes(dirs.sink)) / pointsWrittenOf(final.it),
    cpu: cpuBetween(first, last),
    sustained: logged >= SUSTAINED_FRACTION * offered && inSink >= SUSTAINED_FRACTION * offered,
  };
}

/** The replay part: live, then the IT agent away for the outage, then timed until live again. */
export async function measureCatchUp(
  plant: RuntimePlant,
  dirs: StepDirs,
  shape: LoadShape,
  timing: RuntimeTiming,
  progress: (message: string) => void,
): Promise<CatchUp> {
  const pair = await startPair(plant, dirs, shape, 'replay');
  const { ot } = pair;
  let it: AgentChild | undefined = pair.it;
  try {
    await waitUntilLive(plant, ot, it, shape, timing.settleMs);
    const liveRate = ratePerSecond(await timeWindow(plant, ot, it, timing), (item) => item.it.pointsWritten);
    progress(
      `replay: live at ${Math.round(liveRate)} points/s; IT agent stopped for ${timing.outageMs / 1000} s`,
    );
    const heldBefore = pointsWrittenOf(await it.stop());
    it = undefined;
    await new Promise((resolve) => setTimeout(resolve, timing.outageMs));
    const restarted = await plant.startAgent('it', 'it-replay-restarted', itConfig(dirs, plant.otName));
    it = restarted;
    await restarted.waitUntilConnected(CONNECT_TIMEOUT_MS);
    const connected = await sample(plant, ot, restarted);
    const backlogAtRestart = backlog(connected, heldBefore);
    progress(`replay: IT agent back, ${backlogAtRestart} points behind`);
    const live = await waitUntilLive(plant, ot, restarted, shape, timing.catchUpBoundMs, heldBefore);
    const catchUpSeconds = live === undefined ? undefined : (live.at - connected.at) / 1000;
    return {
      shape,
      outageSeconds: timing.outageMs / 1000,
      liveRate,
      backlogAtRestart,
      startSeconds: (connected.at - restarted.spawnedAt) / 1000,
      catchUpSeconds,
      catchUpRate:
        live === undefined || catchUpSeconds === undefined
          ? undefined
          : (live.it.pointsWritten - connected.it.pointsWritten) / catchUpSeconds,
      cpu: live === undefined ? undefined : cpuBetween(connected, live),
    };
  } finally {
    await Promise.all([ot.stop(), it?.stop()]);
  }
}
