/**
 * `dmz-agent run --config agent.yaml`: runs the agent until SIGTERM or SIGINT (exit 0 once
 * everything durable is flushed), reloading the log level and the API's users on SIGHUP. Settings
 * that shape the data path (sources, sinks, the relay) need a restart, and a reload says which
 * changed.
 */
import pino, { type Logger } from 'pino';
import { EXIT, type ExitStatus, type Output } from '../../relay/protocol/command-line.ts';
import { stopRequested } from '../../relay/protocol/stop-signals.ts';
import { startAdminListener } from './admin-listener.ts';
import { Agent } from './agent.ts';
import { loadAgentConfig, type AgentConfig } from './config.ts';

/** The settings a reload compares with the running ones, to say which need a restart. */
const RELOADED_KEYS = ['credentials', 'state', 'relay', 'admin', 'ot', 'it'] as const;

/** A stop that takes longer than this (a disk that hangs) exits anyway, with status 1. */
const STOP_BOUND_MS = 15_000;

export interface AgentRunControl {
  /** Stops the agent as SIGTERM would (tests running the CLI in-process). */
  readonly stop?: AbortSignal;
  readonly onStarted?: (started: { readonly agent: Agent; readonly adminPort: number | undefined }) => void;
}

export async function runAgent(
  configPath: string,
  output: Output,
  control: AgentRunControl,
): Promise<ExitStatus> {
  const config = await loadAgentConfig(configPath);
  const logger = pino(
    { level: config.log.level, base: { log: 'agent' }, timestamp: pino.stdTimeFunctions.isoTime },
    { write: (line: string) => output.stderr(line) },
  );
  const agent = await Agent.start({ config, configSource: configPath, logger });
  let admin: Awaited<ReturnType<typeof startAdminListener>> | undefined;
  try {
    if (config.admin !== undefined) {
      admin = await startAdminListener(config.admin.host, config.admin.port, () => agent.status());
    }
  } catch (error) {
    await agent.stop();
    throw error;
  }
  const { name, role } = agent.status();
  logger.info({ name, role, adminPort: admin?.port }, 'agent running');
  control.onStarted?.({ agent, adminPort: admin?.port });
  const onHangup = () => void reload(configPath, config, agent, logger);
  process.on('SIGHUP', onHangup);
  const stop = stopRequested(control.stop);
  const reason = await Promise.race([stop, agent.storageFailure.then(() => 'storage failure' as const)]);
  stop.cancel();
  process.off('SIGHUP', onHangup);
  logger.info({ reason }, 'stopping');
  const outcome = await Promise.race([
    Promise.all([agent.stop(), admin?.close()]).then(() => 'stopped' as const),
    new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), STOP_BOUND_MS).unref()),
  ]);
  if (outcome !== 'stopped') logger.error('stopping took too long; exiting anyway');
  else logger.info('stopped; everything durable is on disk');
  logger.flush();
  // A store that failed is reopened only by a new process: exit 1, for Restart=on-failure.
  return outcome === 'stopped' && reason !== 'storage failure' ? EXIT.ok : EXIT.error;
}

async function reload(configPath: string, running: AgentConfig, agent: Agent, logger: Logger): Promise<void> {
  try {
    const next = await loadAgentConfig(configPath);
    // API users apply at once, so that someone removed loses access now, not at the next restart;
    // first, so that a credential file the agent refuses leaves everything as it was.
    const users = next.it?.api?.users;
    const usersReloaded = users !== undefined && running.it?.api?.users !== undefined;
    if (usersReloaded) await agent.reloadApiUsers(users);
    logger.level = next.log.level;
    const settings = (config: AgentConfig, key: (typeof RELOADED_KEYS)[number]) =>
      JSON.stringify(
        key === 'it' && usersReloaded && config.it?.api !== undefined
          ? { ...config.it, api: { ...config.it.api, users: undefined } }
          : config[key],
      );
    const changed = RELOADED_KEYS.filter((key) => settings(next, key) !== settings(running, key));
    logger.info(
      { level: next.log.level, apiUsers: usersReloaded ? users.length : undefined, restartRequired: changed },
      'configuration reloaded',
    );
  } catch (error) {
    logger.error({ err: error }, 'configuration reload refused; keeping the running one');
  }
}
