/**
 * `dmz-agent status --config agent.yaml [--json]`: the screen a plant engineer reads. It needs no
 * port: the running agent writes its status to the state directory (status.ts), and this reads it,
 * says whether that agent is still running, and adds the certificate's expiry from the credential
 * directory. Exit status 0 when the agent runs, 1 when it does not (the last status is shown).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatByteSize } from '../../relay/protocol/byte-size.ts';
import { EXIT, fileError, type ExitStatus, type Output } from '../../relay/protocol/command-line.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { isProcessAlive } from '../../relay/protocol/process-lock.ts';
import { DAY_MS } from '../../pki/lifetimes.ts';
import { loadAgentConfig } from './config.ts';
import { RE_ENROLL_HINT } from './link-supervisor.ts';
import { STATUS_FILE, STATUS_INTERVAL_MS, type AgentStatus, type StreamPosition } from './status.ts';

/** A status older than this many intervals is from an agent that stopped writing it. */
const STALE_INTERVALS = 5;

export async function showStatus(configPath: string, json: boolean, output: Output): Promise<ExitStatus> {
  const config = await loadAgentConfig(configPath);
  const path = join(config.state, STATUS_FILE);
  let status: AgentStatus;
  try {
    const text = await readFile(path, 'utf8');
    try {
      status = JSON.parse(text) as AgentStatus;
    } catch (cause) {
      throw new DmzError('AGENT_ERR_STATUS_DAMAGED', `${path} does not parse as JSON`, { cause });
    }
  } catch (cause) {
    if (cause instanceof DmzError) throw cause;
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new DmzError('AGENT_ERR_NOT_RUNNING', `no agent has run with state directory ${config.state}`, {
        hint: `start it: dmz-agent run --config ${configPath}`,
      });
    }
    throw fileError('read the agent status', path, cause);
  }
  if (!isStatus(status)) {
    throw new DmzError('AGENT_ERR_STATUS_DAMAGED', `${path} is not a status the agent wrote`, {
      hint: 'it is rewritten every 2 s while the agent runs; restart the agent to write it again',
    });
  }
  const running = isRunning(status);
  if (json) {
    output.stdout(`${JSON.stringify({ running, ...status })}\n`);
  } else {
    output.stdout(render(status, running, config.credentials));
  }
  return running ? EXIT.ok : EXIT.error;
}

/** The fields this screen reads, of the types it reads them as. */
function isStatus(value: unknown): value is AgentStatus {
  const status = value as Partial<AgentStatus> | null;
  return (
    typeof status === 'object' &&
    status !== null &&
    typeof status.name === 'string' &&
    (status.role === 'ot' || status.role === 'it') &&
    typeof status.pid === 'number' &&
    typeof status.updatedAt === 'string' &&
    typeof status.relay === 'object' &&
    typeof status.certificate === 'object'
  );
}

/** Whether the agent that wrote `status` still runs: its status is fresh and its process alive. */
export function isRunning(status: AgentStatus): boolean {
  if (Date.now() - Date.parse(status.updatedAt) > STALE_INTERVALS * STATUS_INTERVAL_MS) return false;
  return isProcessAlive(status.pid);
}

/** `credentials`: the agent's credential directory, for the re-enrollment a refusal asks for. */
function render(status: AgentStatus, running: boolean, credentials: string): string {
  const lines: string[] = [];
  lines.push(
    running
      ? `${status.name} (${status.role}) running, pid ${status.pid}, since ${status.startedAt}`
      : `${status.name} (${status.role}) NOT RUNNING; last status ${status.updatedAt}`,
  );
  const { relay } = status;
  lines.push(
    row(
      'relay',
      `${relay.url}: ${relay.connected ? 'connected' : 'DISCONNECTED'} since ${relay.since}` +
        ` (${relay.connects} connects)${relay.lastError === undefined ? '' : `; last error: ${relay.lastError}`}`,
    ),
  );
  if (relay.lastRefusal !== undefined) lines.push(...describeRefusal(relay.lastRefusal, credentials));
  const daysLeft = Math.floor((Date.parse(status.certificate.notAfter) - Date.now()) / DAY_MS);
  lines.push(
    row(
      'cert',
      `serial ${status.certificate.serial}, expires ${status.certificate.notAfter} (${daysLeft < 0 ? 'EXPIRED' : `in ${daysLeft} days`})`,
    ),
  );
  if (status.ot !== undefined) {
    const { ot } = status;
    lines.push(
      row(
        'log',
        `${formatByteSize(ot.log.bytes)} of ${formatByteSize(ot.log.maxBytes)}, ${ot.log.streams} streams; ` +
          `${ot.pointsLogged} points logged, ${ot.pointsSent} sent live, ${ot.pointsLeftToReplay} left to replay`,
      ),
    );
    lines.push(
      row(
        'sessions',
        `${ot.sessions}; replay: ${ot.replay.rounds} rounds, ${ot.replay.pointsReplayed} points, ${ot.replay.gaps} gaps, ${ot.replay.resets} resets`,
      ),
    );
    for (const source of ot.sources) {
      lines.push(
        row(
          'source',
          `${source.name}: ${source.readings} readings${source.lastError === undefined ? '' : `; last error: ${source.lastError}`}`,
        ),
      );
    }
    lines.push(...streams(ot.streams, ot.streamCount));
  }
  if (status.writes !== undefined) lines.push(row('writes', describeWrites(status.writes)));
  for (const consumer of status.it?.consumers ?? []) {
    lines.push(
      row(
        'consumer',
        `${consumer.name}: from ${consumer.from} (${consumer.filter}) into ${consumer.sink}: ${consumer.state}` +
          `${consumer.session === undefined ? '' : ` (session ${consumer.session})`}; ${consumer.pointsWritten} points, ` +
          `${consumer.gapsWritten} gaps, ${consumer.resetsWritten} resets, ${consumer.rounds} replay rounds, ` +
          `${consumer.droppedNotices} dropped notices` +
          (consumer.lastError === undefined ? '' : `; last error: ${consumer.lastError}`),
      ),
    );
    lines.push(...streams(consumer.streams, consumer.streamCount));
  }
  for (const sink of status.it?.sinks ?? []) lines.push(row('sink', describeSink(sink)));
  return `${lines.join('\n')}\n`;
}

/**
 * A refusal of the certificate, on lines of its own: every attempt since has failed at TLS with
 * nothing but "socket hang up" to say why, and only a new enrollment ends it.
 */
function describeRefusal(refusal: NonNullable<AgentStatus['relay']['lastRefusal']>, credentials: string) {
  const what = refusal.code === 'RELAY_ERR_REVOKED' ? 'REVOKED' : 'REFUSED';
  return [
    row(
      what,
      `the relay ${what.toLowerCase()} this agent's certificate (${refusal.code}, ${refusal.at}); ` +
        'every attempt fails until it is enrolled again',
    ),
    row('', RE_ENROLL_HINT.replace('<credentials>', credentials)),
  ];
}

type SinkStatus = NonNullable<NonNullable<AgentStatus['it']>['sinks']>[number];

/**
 * `bridge (mqtt): connected (2 connections); 0 in flight, 0 waiting, 812 acknowledged, ...`; a
 * sink of another type: its counters as it names them.
 */
function describeSink(sink: SinkStatus): string {
  const { name, type, lastError, ...counters } = sink;
  const error = lastError === undefined ? '' : `; last error: ${String(lastError)}`;
  if (type === 'mqtt') {
    const { connected, connections, inFlight, pending, acknowledged, interrupted, expired } = counters;
    return (
      `${name} (mqtt): ${connected === true ? 'connected' : 'DISCONNECTED'} (${connections} connections); ` +
      `${inFlight} in flight, ${pending} waiting, ${acknowledged} acknowledged, ` +
      `${interrupted} interrupted, ${expired} given up${error}`
    );
  }
  const listed = Object.entries(counters).map(([key, value]) => `${key} ${String(value)}`);
  return `${name} (${type}): ${listed.join(', ')}${error}`;
}

/** `3 done, 2 refused (AGENT_ERR_WRITE_OUT_OF_RANGE 2), 0 failed`. */
function describeWrites(writes: NonNullable<AgentStatus['writes']>): string {
  const part = (label: string, byCode: Readonly<Record<string, number>>) => {
    const entries = Object.entries(byCode);
    const total = entries.reduce((sum, [, count]) => sum + count, 0);
    const codes = entries.map(([code, count]) => `${code} ${count}`).join(', ');
    return `${total} ${label}${codes === '' ? '' : ` (${codes})`}`;
  };
  return `${writes.done} done, ${part('refused', writes.refused)}, ${part('failed', writes.failed)}`;
}

function row(label: string, text: string): string {
  return `  ${label.padEnd(9)}${text}`;
}

function streams(positions: readonly StreamPosition[], count: number): string[] {
  const width = Math.max(0, ...positions.map((position) => position.topic.length));
  const lines = positions.map((position) => `      ${position.topic.padEnd(width)}  ${position.lastSeq}`);
  if (count > positions.length)
    lines.push(`      ... and ${count - positions.length} more (--json lists the first ${positions.length})`);
  return [row('streams', `${count} (last sequence of each)`), ...lines];
}
