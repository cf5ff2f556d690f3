/**
 * `dmz-relay --config relay.yaml [--state DIR]`: runs the relay until SIGTERM/SIGINT (drain and
 * exit 0). SIGHUP, or a change to the config file, reloads policy without dropping connections
 * that are still allowed; an invalid new config is refused and the running one kept.
 *
 * The server's modules (Fastify, the CA, the YAML parser) load only once the command line is
 * known to be good: `--help` and a usage error answer at once.
 */
import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import {
  asksForVersion,
  EXIT,
  formatError,
  parseCommandLine,
  processOutput,
  reportError,
  usageError,
  versionLine,
  type ExitStatus,
  type Output,
} from './protocol/command-line.ts';
import type { RelayConfig } from './server/config.ts';
import { stopRequested } from './protocol/stop-signals.ts';

const PROGRAM = 'dmz-relay';

const USAGE = `Usage: dmz-relay --config FILE [--state DIR]

Runs the DMZ relay: the agent listener (mutual TLS), the loopback admin listener
(/metrics, /healthz), and the enrollment listener when enabled.

Options:
  --config FILE   relay configuration (YAML); required
  --state DIR     state directory holding the CA (overrides the config's "state")
  -h, --help      show this help
  --version       show the version

Signals: SIGHUP reloads the configuration (also done when the file changes);
SIGTERM or SIGINT drains connections and exits (a second one exits at once).
Exit status: 0 stopped by a signal, 1 error, 2 invalid command line.`;

/** Editors write a file in several steps; wait for the last one before reloading. */
const RELOAD_DEBOUNCE_MS = 200;
/**
 * Draining tells every agent and closes every listener; the enrollment port gives enrollments in
 * flight 2 s. Past 10 s something hangs: the relay exits anyway (systemd would kill it at 90 s).
 */
const DRAIN_BOUND_MS = 10_000;

export interface RelayCliControl {
  /** Stops the relay as SIGTERM does (tests running it in-process). */
  readonly stop?: AbortSignal;
  /** Called once the relay listens (tests). */
  readonly onListening?: (ports: { agentPort: number; adminPort: number }) => void;
}

/** Runs the relay until it is stopped; returns the exit status. bin/dmz-relay.js sets it. */
export async function runRelayCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  output: Output = processOutput,
  control: RelayCliControl = {},
): Promise<ExitStatus> {
  try {
    if (asksForVersion(argv)) {
      output.stdout(versionLine(PROGRAM));
      return EXIT.ok;
    }
    const { values } = parseCommandLine({
      args: [...argv],
      options: {
        config: { type: 'string' },
        state: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help === true) {
      output.stdout(`${USAGE}\n`);
      return EXIT.ok;
    }
    const configPath = values.config;
    if (configPath === undefined) throw usageError('--config FILE is required');
    if (values.state === '') throw usageError('--state needs a directory');
    return await serve(configPath, values.state, env, output, control);
  } catch (error) {
    return reportError(PROGRAM, output, error, `see '${PROGRAM} --help'`);
  }
}

async function serve(
  configPath: string,
  stateOverride: string | undefined,
  env: NodeJS.ProcessEnv,
  output: Output,
  control: RelayCliControl,
): Promise<ExitStatus> {
  const [
    { loadRelayConfig },
    { startRelay },
    { createAuditLog, AUDIT_EVENT },
    { createDebugLog },
    { refuseOtherStateOwner },
  ] = await Promise.all([
    import('./server/config.ts'),
    import('./server/relay.ts'),
    import('./server/audit.ts'),
    import('./server/log-destination.ts'),
    import('./server/relay-pki.ts'),
  ]);
  const load = async (): Promise<RelayConfig> => {
    const config = await loadRelayConfig(configPath);
    return stateOverride === undefined ? config : Object.freeze({ ...config, state: stateOverride });
  };

  const config = await load();
  // Before the audit log is opened: run by a user who does not own the state (root), the relay
  // would leave files there its owner cannot read, and fail at its next start as that owner.
  refuseOtherStateOwner(config.state);
  const log = createDebugLog(
    config.log.level,
    output === processOutput ? undefined : { write: (line) => output.stderr(line) },
  );
  const audit = createAuditLog(config.log.audit);
  let relay;
  try {
    relay = await startRelay({ config, audit, log, env });
  } catch (error) {
    audit.discard();
    throw error;
  }
  log.info({ agentPort: relay.agentPort, adminPort: relay.adminPort }, 'relay listening');
  warnIfNoPolicy(log, config);
  control.onListening?.({ agentPort: relay.agentPort, adminPort: relay.adminPort });

  let reloading = Promise.resolve();
  const reload = (trigger: string) => {
    reloading = reloading.then(async () => {
      try {
        const next = await load();
        const restartRequired = relay.applyConfig(next);
        log.info({ trigger, restartRequired }, 'configuration reloaded');
        warnIfNoPolicy(log, next);
      } catch (error) {
        const line = oneLine(error);
        audit.record(AUDIT_EVENT.policyReloadFailed, { trigger, error: line });
        log.error({ trigger, error: line }, 'configuration reload refused; keeping the running one');
      }
    });
  };
  const onHangup = () => reload('SIGHUP');
  process.on('SIGHUP', onHangup);
  let debounce: NodeJS.Timeout | undefined;
  // Watch the directory, not the file: editors and configuration tools save by renaming a new
  // file over the old one, and a watch on the replaced file goes deaf after the first save.
  const configName = basename(configPath);
  const watcher = watch(dirname(configPath), (_event, filename) => {
    if (filename !== null && filename !== configName) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => reload('file change'), RELOAD_DEBOUNCE_MS);
  });
  // Losing the watch (the directory removed, inotify limits) must not stop the relay; SIGHUP still works.
  watcher.on('error', (error) =>
    log.error({ error: error.message }, 'config file watch failed; reload with SIGHUP'),
  );

  const signal = await stopRequested(control.stop);
  process.off('SIGHUP', onHangup);
  watcher.close();
  clearTimeout(debounce);
  log.info({ signal }, 'draining');
  // A second signal while draining stops at once.
  const again = stopRequested(undefined);
  const outcome = await Promise.race([
    relay.close().then(() => 'drained' as const),
    again.then(() => 'interrupted' as const),
    new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), DRAIN_BOUND_MS).unref()),
  ]);
  again.cancel();
  if (outcome !== 'drained') log.error({ outcome }, 'drain did not finish; exiting anyway');
  audit.close();
  return outcome === 'drained' ? EXIT.ok : EXIT.error;
}

/** Deny by default: a relay without a single rule refuses every agent. Worth saying at once. */
function warnIfNoPolicy(log: Logger, config: RelayConfig): void {
  if (config.policy.length > 0) return;
  log.warn('the configuration has no policy rules: every agent will be refused; add rules under "policy"');
}

/** The line a command would print, without its program name (for the logs). */
function oneLine(error: unknown): string {
  return formatError(PROGRAM, error).replace(`${PROGRAM}: `, '').trimEnd();
}
