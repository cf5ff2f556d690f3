/**
 * `dmz-agent write --config it.yaml --to press-7 --topic press-7/line1/setpoint --value 42`: one
 * signed write from the command line, for operators and the lab. It connects as the IT agent of
 * the configuration, with its credentials and its write key, so it refuses to run while that agent
 * runs: the relay keeps one connection per identity, and this one would replace the agent's. A
 * running IT agent writes through its own API (agent.writes).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  EXIT,
  invalidArgument,
  parseCommandLine,
  quote,
  usageError,
  type ExitStatus,
  type Output,
} from '../../relay/protocol/command-line.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { MAX_REQUEST_TIMEOUT_MS } from '../../relay/protocol/limits.ts';
import { formatDuration, parseDuration } from '../../pki/duration.ts';
import { loadCredentials } from '../credentials.ts';
import { RelayLink } from '../link/relay-link.ts';
import type { WriteValue } from '../ot/sources/source.ts';
import { loadAgentConfig } from '../runtime/config.ts';
import { STATUS_FILE, type AgentStatus } from '../runtime/status.ts';
import { isRunning } from '../runtime/status-command.ts';
import { DEFAULT_WRITE_TIMEOUT_MS, WriteClient } from './write-client.ts';
import { loadWriteKey } from './write-key.ts';

export const WRITE_USAGE = `Usage: dmz-agent write --config FILE --to AGENT --topic TOPIC --value VALUE [--timeout 10s] [--json]

Sends one write, signed with this IT agent's write key, to OT agent AGENT, and waits for its
outcome: done (exit 0), refused or failed (exit 1), with the code and why. Runs as the IT agent of
FILE, so not while that agent runs (its connection would be replaced).

Options:
  --config FILE     the IT agent's configuration (agent.yaml)
  --to AGENT        the OT agent (press-7)
  --topic TOPIC     the point's full topic (press-7/line1/setpoint)
  --value VALUE     a number (42, -1.5), true or false, or text; a JSON string ("42") is text
  --timeout TIME    how long to wait for the outcome (default ${formatDuration(DEFAULT_WRITE_TIMEOUT_MS)}, at most ${formatDuration(MAX_REQUEST_TIMEOUT_MS)})
  --json            print the outcome as one JSON document
  -h, --help        show this help`;

export async function runWriteCommand(argv: readonly string[], output: Output): Promise<ExitStatus> {
  const { values } = parseCommandLine({
    args: [...argv],
    options: {
      config: { type: 'string' },
      to: { type: 'string' },
      topic: { type: 'string' },
      value: { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) {
    output.stdout(`${WRITE_USAGE}\n`);
    return EXIT.ok;
  }
  for (const option of ['config', 'to', 'topic', 'value'] as const) {
    if (values[option] === undefined) throw usageError(`--${option} is required`);
  }
  const timeoutMs = values.timeout === undefined ? DEFAULT_WRITE_TIMEOUT_MS : parseTimeout(values.timeout);
  const config = await loadAgentConfig(values.config as string);
  if (config.it === undefined)
    throw invalidArgument(
      `${quote(values.config as string)} has no it section: writes are sent by an IT agent`,
    );
  await refuseWhileRunning(config.state, values.config as string);
  const credentials = await loadCredentials(config.credentials);
  const key = await loadWriteKey(config.state);
  const link = await RelayLink.connect({
    url: config.relay.url,
    keyPem: credentials.keyPem,
    certPem: credentials.certPem,
    caPem: credentials.caPem,
    software: 'dmz-agent write',
    connectTimeoutMs: config.relay.connectTimeoutMs,
  });
  try {
    const client = new WriteClient({ name: credentials.identity.name, key, link: () => link });
    const result = await client.write({
      agent: values.to as string,
      topic: values.topic as string,
      value: parseValue(values.value as string),
      timeoutMs,
    });
    output.stdout(
      values.json === true
        ? `${JSON.stringify(result)}\n`
        : `${result.status}${result.code === undefined ? '' : ` (${result.code})`}: ${result.message}\n`,
    );
    return result.status === 'done' ? EXIT.ok : EXIT.error;
  } finally {
    await link.close();
  }
}

/** A number, true or false when VALUE reads as one in JSON; a JSON string as its text; else VALUE as text. */
export function parseValue(text: string): WriteValue {
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'number' || typeof parsed === 'boolean' || typeof parsed === 'string')
      return parsed;
  } catch {
    // Not JSON: plain text.
  }
  return text;
}

function parseTimeout(text: string): number {
  const ms = parseDuration(text, { milliseconds: true });
  if (ms === undefined || ms < 1 || ms > MAX_REQUEST_TIMEOUT_MS)
    throw invalidArgument(
      `--timeout ${quote(text)} must be a duration up to ${formatDuration(MAX_REQUEST_TIMEOUT_MS)}`,
    );
  return ms;
}

async function refuseWhileRunning(state: string, configPath: string): Promise<void> {
  let status: AgentStatus;
  try {
    status = JSON.parse(await readFile(join(state, STATUS_FILE), 'utf8')) as AgentStatus;
  } catch {
    return; // No status (never ran) or a damaged one: no agent to replace.
  }
  if (isRunning(status)) {
    throw new DmzError(
      'AGENT_ERR_WRITE_AGENT_RUNNING',
      `the agent of ${quote(configPath)} is running (pid ${status.pid}): this would replace its connection`,
      { hint: 'write through the running agent (its API), or stop it first' },
    );
  }
}
