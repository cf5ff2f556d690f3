/**
 * The targets, judged from one run's results: every ratio compares two systems measured
 * in the same run (never a number against an old one). A benchmark reports; it does not fail
 * when a target is missed.
 */
import type { ConnectionCost } from './connection-cost.ts';
import type { FairCell } from './fair-matrix.ts';
import type { LatencyCell } from './load-latency.ts';
import type { StormResult } from './reconnect-storm.ts';
import { FAN_OUT_SUBSCRIBERS } from './settings.ts';
import type { Outcome } from './stats.ts';
import type { SystemName } from './systems.ts';
import { formatRatio } from './table.ts';

export const TARGETS = {
  /** Points per message of the headline comparison. */
  headlinePoints: 128,
  oneToOneOverMosquitto: 2,
  oneToOneOverNats: 1.5,
  fanOutOverBoth: 1.5,
  /** Offered load (fraction of capacity) and fan-out at which p99 is judged. */
  latencyLoad: 0.5,
  maxP99Ms: 2,
  maxIdleRssBytesPerAgent: 40 * 1024,
  stormBackWithinSeconds: 30,
} as const;

export interface Verdict {
  readonly target: string;
  readonly measured: string;
  /** undefined: not measured in this run. */
  readonly met: boolean | undefined;
}

export interface TargetInputs {
  readonly fair: readonly FairCell[];
  readonly latency: readonly LatencyCell[];
  readonly connections: readonly Outcome<ConnectionCost>[];
  readonly storms: readonly Outcome<StormResult>[];
}

export function judgeTargets(inputs: TargetInputs): Verdict[] {
  const points = (system: SystemName, subscribers: number) => {
    const cell = inputs.fair.find(
      (candidate) =>
        candidate.system === system &&
        candidate.subscribers === subscribers &&
        candidate.pointsPerMessage === TARGETS.headlinePoints,
    );
    return cell?.result.ok === true ? cell.result.value.pointsPerSecond : undefined;
  };
  const ratio = (subscribers: number, other: SystemName, minimum: number): Verdict => {
    const relay = points('relay', subscribers);
    const reference = points(other, subscribers);
    const value = relay === undefined || reference === undefined ? undefined : relay / reference;
    return {
      target: `${TARGETS.headlinePoints} points/message, 1 -> ${subscribers}: relay >= ${minimum}x ${other}`,
      measured: formatRatio(value),
      met: value === undefined ? undefined : value >= minimum,
    };
  };
  const verdicts: Verdict[] = [
    ratio(1, 'mosquitto-c', TARGETS.oneToOneOverMosquitto),
    ratio(1, 'nats', TARGETS.oneToOneOverNats),
    ratio(FAN_OUT_SUBSCRIBERS, 'mosquitto-c', TARGETS.fanOutOverBoth),
    ratio(FAN_OUT_SUBSCRIBERS, 'nats', TARGETS.fanOutOverBoth),
    latencyVerdict(inputs.latency),
    ...connectionVerdicts(inputs.connections),
    ...stormVerdicts(inputs.storms),
  ];
  return verdicts;
}

function latencyVerdict(cells: readonly LatencyCell[]): Verdict {
  const p99 = (system: SystemName) => {
    const cell = cells.find(
      (candidate) =>
        candidate.system === system &&
        candidate.subscribers === FAN_OUT_SUBSCRIBERS &&
        candidate.load === TARGETS.latencyLoad,
    );
    return cell?.result.ok === true ? cell.result.value.latency?.p99Ms : undefined;
  };
  const relay = p99('relay');
  const mosquitto = p99('mosquitto-c');
  return {
    target:
      `p99 at ${TARGETS.latencyLoad * 100}% load, 1 -> ${FAN_OUT_SUBSCRIBERS}: relay <= ${TARGETS.maxP99Ms} ms ` +
      'and <= mosquitto (C clients)',
    measured: `relay ${relay?.toFixed(3) ?? 'n/a'} ms, mosquitto ${mosquitto?.toFixed(3) ?? 'n/a'} ms`,
    met:
      relay === undefined || mosquitto === undefined
        ? undefined
        : relay <= TARGETS.maxP99Ms && relay <= mosquitto,
  };
}

function connectionVerdicts(connections: readonly Outcome<ConnectionCost>[]): Verdict[] {
  const of = (server: ConnectionCost['server']) =>
    connections.flatMap((outcome) =>
      outcome.ok && outcome.value.server === server ? [outcome.value] : [],
    )[0];
  const relay = of('relay');
  const mosquitto = of('mosquitto');
  const cpu = (cost: ConnectionCost | undefined) =>
    cost?.steps.map((step) => step.cpuMsPerConnection.toFixed(2)).join(' / ') ?? 'n/a';
  const cpuMet =
    relay === undefined || mosquitto === undefined || relay.steps.length === 0
      ? undefined
      : relay.steps.every(
          (step, index) =>
            step.cpuMsPerConnection <= (mosquitto.steps[index]?.cpuMsPerConnection ?? Infinity),
        );
  const rss = relay?.steps.map((step) => (step.rssPerConnectionBytes / 1024).toFixed(1)).join(' / ');
  return [
    {
      target: 'relay CPU per mTLS connection <= mosquitto (ms, per step)',
      measured: `relay ${cpu(relay)}, mosquitto ${cpu(mosquitto)}`,
      met: cpuMet,
    },
    {
      target: `relay RSS per idle agent <= ${TARGETS.maxIdleRssBytesPerAgent / 1024} KiB (per step)`,
      measured: rss === undefined ? 'n/a' : `${rss} KiB`,
      met:
        relay === undefined || relay.steps.length === 0
          ? undefined
          : relay.steps.every((step) => step.rssPerConnectionBytes <= TARGETS.maxIdleRssBytesPerAgent),
    },
  ];
}

/** One verdict per storm run (resumed and full handshakes); not run, one verdict saying so. */
function stormVerdicts(storms: readonly Outcome<StormResult>[]): Verdict[] {
  const target = (handshakes: string) =>
    `relay restart with the fleet connected (${handshakes}): all back within ${TARGETS.stormBackWithinSeconds} s, ` +
    'no handshake timeout, relay up';
  if (storms.length === 0) return [{ target: target('any'), measured: 'not run', met: undefined }];
  return storms.map((storm) => {
    if (!storm.ok) return { target: target('a storm'), measured: 'failed to run', met: undefined };
    const { handshakeKind, backSeconds, agents, agentsAtEnd, refused, relayUp } = storm.value;
    const timeouts = refused['handshake_timeout'] ?? 0;
    return {
      target: target(`${handshakeKind} handshakes`),
      measured:
        `${agentsAtEnd} of ${agents} back` +
        (backSeconds === undefined ? ' (not all within the limit)' : ` in ${backSeconds.toFixed(1)} s`) +
        `, ${timeouts} handshake timeouts, relay ${relayUp ? 'up' : 'DOWN'}`,
      met:
        backSeconds !== undefined &&
        backSeconds <= TARGETS.stormBackWithinSeconds &&
        timeouts === 0 &&
        relayUp,
    };
  });
}
