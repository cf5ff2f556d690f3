/**
 * The command line of `dmz-agent opcua trust`, parsed and reported as every command of the
 * product is (relay/protocol/command-line.ts). node-opcua is loaded only once the command line is
 * known to be good: it takes seconds to load, and `--help` or a typo need none of it.
 */
import {
  EXIT,
  parseCommandLine,
  quote,
  usageError,
  type ExitStatus,
  type Output,
} from '../../../../relay/protocol/command-line.ts';

export const OPCUA_USAGE = `Usage: dmz-agent opcua trust --config FILE --source NAME [--fingerprint SHA256] [--json]

Asks the OPC UA server of source NAME for its certificate and shows its SHA-256 fingerprint and
subject, and this agent's own client certificate (which the server must trust in turn). With
--fingerprint, and only when it is that certificate's, trusts it: the source connects with it
from its next attempt on. Nothing is ever trusted without it.

Options:
  --config FILE         the agent configuration (agent.yaml)
  --source NAME         the opcua source, by its name in ot.sources
  --fingerprint SHA256  the fingerprint as the server itself shows it (colons optional)
  --json                print both certificates as one JSON document
  -h, --help            show this help`;

export async function runOpcuaCommand(argv: readonly string[], output: Output): Promise<ExitStatus> {
  const [action, ...rest] = argv;
  if (action === '-h' || action === '--help') {
    output.stdout(`${OPCUA_USAGE}\n`);
    return EXIT.ok;
  }
  if (action === undefined) throw usageError('an action is required: opcua trust');
  if (action !== 'trust') throw usageError(`unknown opcua action ${quote(action)}`);
  const { values } = parseCommandLine({
    args: rest,
    options: {
      config: { type: 'string' },
      source: { type: 'string' },
      fingerprint: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) {
    output.stdout(`${OPCUA_USAGE}\n`);
    return EXIT.ok;
  }
  if (values.config === undefined) throw usageError('--config FILE is required');
  if (values.source === undefined) throw usageError('--source NAME is required');
  const { trustServer } = await import('./trust-command.ts');
  return trustServer(
    {
      configPath: values.config,
      sourceName: values.source,
      fingerprint: values.fingerprint,
      json: values.json === true,
    },
    output,
  );
}
