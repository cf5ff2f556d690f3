/**
 * `dmz-agent writes open|close|status|key`: the local write window on an OT host, and the public
 * write key of an IT agent for the OT operator to pin. The window commands write only the agent's
 * state directory, so only someone on the OT host, as the agent's user, can open a window; nothing
 * that comes over the relay runs them.
 */
import {
  EXIT,
  parseCommandLine,
  quote,
  usageError,
  invalidArgument,
  type ExitStatus,
  type Output,
} from '../../../relay/protocol/command-line.ts';
import { formatDuration, parseDuration } from '../../../pki/duration.ts';
import { loadAgentConfig, type AgentConfig } from '../../runtime/config.ts';

export const WRITES_USAGE = `Usage: dmz-agent writes <action> --config FILE [options]

Actions:
  open --for DURATION  open the local write window on this OT host for DURATION (15m, 2h), at
                       most ot.writes.maxWindow (default 8h); points with \`window: true\` take
                       writes from IT only while it is open. Opening again sets a new end.
  close                close the window now
  status               show whether the window is open, and until when
  key                  on an IT host: print this agent's public write key (made if missing),
                       for the OT operator to pin under signedBy

Options:
  --config FILE  the agent configuration (agent.yaml)
  --for DURATION how long the window stays open (open only)
  --json         print the result as one JSON document
  -h, --help     show this help

Run it on the host itself, as the agent's user: it writes the agent's state directory.`;

export async function runWritesCommand(argv: readonly string[], output: Output): Promise<ExitStatus> {
  const [action, ...rest] = argv;
  if (action === '-h' || action === '--help') {
    output.stdout(`${WRITES_USAGE}\n`);
    return EXIT.ok;
  }
  if (action === undefined) throw usageError('an action is required: writes open, close, status or key');
  if (!['open', 'close', 'status', 'key'].includes(action))
    throw usageError(`unknown writes action ${quote(action)}`);
  const { values } = parseCommandLine({
    args: rest,
    options: {
      config: { type: 'string' },
      for: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) {
    output.stdout(`${WRITES_USAGE}\n`);
    return EXIT.ok;
  }
  if (values.config === undefined) throw usageError('--config FILE is required');
  if (values.for !== undefined && action !== 'open') throw usageError('--for is for writes open only');
  const config = await loadAgentConfig(values.config);
  const json = values.json === true;
  if (action === 'key') return showKey(config, values.config, json, output);
  const ot = config.ot;
  if (ot === undefined)
    throw invalidArgument(`${quote(values.config)} has no ot section: the write window is an OT agent's`);
  const { checkWindowUser, closeWindow, openWindow, readWindow } = await import('./write-window.ts');
  await checkWindowUser(config.state);
  switch (action) {
    case 'open': {
      if (values.for === undefined) throw usageError('--for DURATION is required, such as --for 15m');
      const durationMs = parseDuration(values.for, { milliseconds: true });
      if (durationMs === undefined)
        throw invalidArgument(`--for ${quote(values.for)} is not a duration like 15m or 2h`);
      const window = await openWindow(config.state, durationMs, ot.writes.maxWindowMs);
      output.stdout(
        json
          ? `${JSON.stringify({ open: true, ...window })}\n`
          : `write window open until ${new Date(window.until).toISOString()} (${formatDuration(durationMs)})\n`,
      );
      return EXIT.ok;
    }
    case 'close': {
      const wasOpen = await closeWindow(config.state, ot.writes.maxWindowMs);
      output.stdout(
        json
          ? `${JSON.stringify({ open: false, wasOpen })}\n`
          : `write window closed${wasOpen ? '' : ' (it was not open)'}\n`,
      );
      return EXIT.ok;
    }
    default: {
      const state = await readWindow(config.state, ot.writes.maxWindowMs);
      if (json) output.stdout(`${JSON.stringify(state.open ? { open: true, ...state.window } : state)}\n`);
      else if (state.open)
        output.stdout(
          `write window open until ${new Date(state.window.until).toISOString()}, opened by ${state.window.by}\n`,
        );
      else {
        const problem = state.problem === undefined ? '' : `: ${state.problem}`;
        output.stdout(`write window closed (${state.reason}${problem})\n`);
      }
      return EXIT.ok;
    }
  }
}

async function showKey(
  config: AgentConfig,
  configPath: string,
  json: boolean,
  output: Output,
): Promise<ExitStatus> {
  if (config.it === undefined)
    throw invalidArgument(`${quote(configPath)} has no it section: write keys are an IT agent's`);
  const [{ loadWriteKey }, { loadCredentials }] = await Promise.all([
    import('../../it/write-key.ts'),
    import('../../credentials.ts'),
  ]);
  const key = await loadWriteKey(config.state);
  const name = await loadCredentials(config.credentials).then(
    (credentials) => credentials.identity.name,
    () => "<this agent's name>",
  );
  if (json) {
    output.stdout(
      `${JSON.stringify({ agent: name, kid: key.kid, jwk: key.publicJwk, pem: key.publicPem, file: key.path })}\n`,
    );
  } else {
    output.stdout(
      `write key ${key.kid} (${key.path})\n` +
        `pin it on the OT agent, under ot.writes.points[].signedBy:\n` +
        `  - agent: ${name}\n` +
        `    jwk: ${JSON.stringify(key.publicJwk)}\n`,
    );
  }
  return EXIT.ok;
}
