/**
 * `dmz-relay --config relay.yaml [--state DIR]`: runs the relay until SIGTERM/SIGINT (drain and
 * exit 0). SIGHUP, or a change to the config file, reloads policy without dropping connections
 * that are still allowed; an invalid new config is refused and the running one kept.
 */
import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, DmzError } from './protocol/errors.ts';
import { AUDIT_EVENT, createAuditLog } from './server/audit.ts';
import { loadRelayConfig, type RelayConfig } from './server/config.ts';
import { startRelay } from './server/relay.ts';

const USAGE = `Usage: dmz-relay --config FILE [--state DIR]

Runs the DMZ relay: the agent listener (mutual TLS), the loopback admin listener
(/metrics, /healthz), and the enrollment listener when enabled.

Options:
  --config FILE   relay configuration (YAML); required
  --state DIR     state directory holding the CA (overrides the config's "state")
  -h, --help      show this help

Signals: SIGHUP reloads the configuration (also done when the file changes);
SIGTERM or SIGINT drains connections and exits.`;

/** Editors write a file in several steps; wait for the last one before reloading. */
const RELOAD_DEBOUNCE_MS = 200;

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        state: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    process.stderr.write(`dmz-relay: ${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args.values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const configPath = args.values.config;
  if (configPath === undefined) {
    process.stderr.write(`dmz-relay: --config is required\n\n${USAGE}\n`);
    return 2;
  }
  const stateOverride = args.values.state;
  const load = async (): Promise<RelayConfig> => {
    const config = await loadRelayConfig(configPath);
    return stateOverride === undefined ? config : Object.freeze({ ...config, state: stateOverride });
  };

  const config = await load();
  const log = pino({ level: config.log.level, base: { log: 'relay' } }, pino.destination(2));
  const audit = createAuditLog(config.log.audit);
  const relay = await startRelay({ config, audit, log });
  log.info({ agentPort: relay.agentPort, adminPort: relay.adminPort }, 'relay listening');

  let reloading = Promise.resolve();
  const reload = (trigger: string) => {
    reloading = reloading.then(async () => {
      try {
        const restartRequired = relay.applyConfig(await load());
        log.info({ trigger, restartRequired }, 'configuration reloaded');
      } catch (error) {
        audit.record(AUDIT_EVENT.policyReloadFailed, { trigger, error: describe(error) });
        log.error(
          { trigger, error: describe(error) },
          'configuration reload refused; keeping the running one',
        );
      }
    });
  };
  process.on('SIGHUP', () => reload('SIGHUP'));
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
  watcher.on('error', (error) => log.error({ err: error }, 'config file watch failed; reload with SIGHUP'));

  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  watcher.close();
  clearTimeout(debounce);
  log.info('draining');
  await relay.close();
  audit.flush();
  return 0;
}

function describe(error: unknown): string {
  return error instanceof DmzError ? error.message : String(error);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const message = error instanceof ConfigError || error instanceof DmzError ? error.message : String(error);
    process.stderr.write(`dmz-relay: ${message}\n`);
    process.exit(1);
  },
);
