/**
 * The report's sections after the fair table: latency under load, connection cost, the restart
 * storm. Plain text, one table each (report.ts puts them together).
 */
import type { ConnectionCost, ConnectionStep } from './connection-cost.ts';
import type { LatencyCell } from './load-latency.ts';
import type { StormResult } from './reconnect-storm.ts';
import type { Outcome } from './stats.ts';
import { SHORT_NAMES } from './systems.ts';
import { formatCount, formatTable } from './table.ts';

export function latencySection(cells: readonly LatencyCell[]): string[] {
  const rows: string[][] = [
    [
      'system',
      'fan-out',
      'load',
      'msgs/s',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'max ms',
      'samples',
      'CPU server',
      'lost',
    ],
  ];
  for (const cell of cells) {
    const head = [SHORT_NAMES[cell.system], `1 -> ${cell.subscribers}`, `${Math.round(cell.load * 100)}%`];
    if (!cell.result.ok || cell.result.value.latency === undefined) {
      rows.push([...head, formatCount(cell.offeredMessagesPerSecond), 'failed']);
      continue;
    }
    const { latency, cpu } = cell.result.value;
    rows.push([
      ...head,
      formatCount(cell.result.value.messagesPerSecond),
      latency.p50Ms.toFixed(3),
      latency.p99Ms.toFixed(3),
      latency.p999Ms.toFixed(3),
      latency.maxMs.toFixed(2),
      formatCount(latency.samples),
      cpu.server.toFixed(2),
      formatCount(cell.result.value.undelivered + cell.result.value.malformed),
    ]);
  }
  return [
    'LATENCY UNDER LOAD: paced at a fraction of the capacity this run measured for the same system and',
    'fan-out; one-way, send stamp -> arrival in each subscriber process (monotonic clock; mosquitto_sub: wall clock):',
    ...formatTable(rows).map((line) => `  ${line}`),
  ];
}

export function connectionSection(connections: readonly Outcome<ConnectionCost>[]): string[] {
  const rows: string[][] = [
    [
      'server',
      'agents',
      'TLS handshakes',
      'CPU ms/connection',
      'RSS/agent KiB',
      'RSS MiB',
      'idle CPU',
      'connect s',
      'failures',
    ],
  ];
  const errors: string[] = [];
  for (const outcome of connections) {
    if (!outcome.ok) {
      errors.push(outcome.error);
      continue;
    }
    const { resumed } = outcome.value;
    // The resumed row is the first step's agents again: shown after it, as measured.
    const shown = outcome.value.steps.flatMap((step, index) =>
      index === 0 && resumed !== undefined ? [step, resumed] : [step],
    );
    for (const step of shown) {
      rows.push([
        outcome.value.server,
        formatCount(step.agents),
        handshakeKinds(step),
        step.cpuMsPerConnection.toFixed(2),
        (step.rssPerConnectionBytes / 1024).toFixed(1),
        (step.rssBytes / 1024 / 1024).toFixed(0),
        step.idleCpu.toFixed(2),
        step.connectSeconds.toFixed(1),
        formatCount(step.failures),
      ]);
    }
    errors.push(...outcome.value.errors.map((error) => `${outcome.value.server}: ${error}`));
  }
  return [
    'CONNECTION COST: idle clients with their own RSA-2048 certificates (relay: the dmz agent client;',
    'mosquitto: mqtt.js; nats: nats.js), CPU per connection while a step connected, RSS per agent',
    'over the server before the first connection; the relay counts its handshakes (full: a first',
    "connection; resumed: the first step's agents again, with the session tickets it left them):",
    ...formatTable(rows).map((line) => `  ${line}`),
    ...errors.slice(0, 5).map((error) => `  client error: ${error}`),
  ];
}

/** `full 1,000` / `resumed 998, full 2` from the relay's counter; `-` where the server has none. */
function handshakeKinds(step: ConnectionStep): string {
  if (step.handshakes === undefined) return '-';
  return (
    Object.entries(step.handshakes)
      .filter(([, count]) => count > 0)
      .map(([kind, count]) => `${kind} ${formatCount(count)}`)
      .join(', ') || 'none'
  );
}

export function stormSection(storm: Outcome<StormResult>): string[] {
  if (!storm.ok) return [`RESTART STORM: failed: ${storm.error}`];
  const result = storm.value;
  const counts = (counter: Readonly<Record<string, number>>) =>
    Object.entries(counter)
      .filter(([, count]) => count > 0)
      .map(([reason, count]) => `${reason} ${formatCount(count)}`)
      .join(', ') || 'none';
  const how =
    result.handshakeKind === 'resumed'
      ? 'its session ticket keys kept, as a restart leaves them; the agents offer their tickets'
      : "as before session resumption: its ticket keys removed and the agents' tickets dropped";
  return [
    `RESTART STORM, ${result.handshakeKind} handshakes: the relay drained and restarted on the same port, ${how};`,
    "every agent reconnecting by itself (the agent link's full-jitter backoff):",
    `  agents connected before: ${formatCount(result.agents)}; old relay exited after ${result.stopSeconds.toFixed(1)} s; ` +
      `new relay listening ${result.restartSeconds.toFixed(1)} s after the stop`,
    `  all back: ${result.backSeconds === undefined ? `NO (${formatCount(result.agentsAtEnd)} within the limit)` : `${result.backSeconds.toFixed(1)} s after the new relay listened`}`,
    `  CPU meanwhile: relay ${result.relayCpu.toFixed(2)} cores, fleet workers ${result.fleetCpu.toFixed(2)} cores`,
    `  handshakes the new relay admitted: ${counts(result.handshakes)}`,
    `  refused by the new relay: ${counts(result.refused)}`,
    `  disconnected by it after admission: ${counts(result.disconnected)}`,
    `  agents' attempts: ${formatCount(result.attempts)}, failed ${formatCount(result.failures)}; relay ${result.relayUp ? 'up' : 'DOWN'} at the end`,
    ...result.clientErrors.slice(0, 5).map((error) => `  client error: ${error}`),
  ];
}
