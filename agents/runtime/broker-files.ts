/**
 * The MQTT broker files agent.yaml names (a source's or the bridge's password, CA, certificate and
 * key), checked at start. A connection reads them at each attempt (a renewed certificate applies)
 * and retries one it cannot read; at start, a file that is not there is a mistake in the config,
 * and the agent stops before it connects anywhere, naming the key.
 */
import { ConfigError } from '../../relay/protocol/errors.ts';
import { checkCredentialFiles } from '../mqtt/broker-socket.ts';
import type { AgentConfig } from './config.ts';

/** Throws ConfigError (from `source`) listing every broker file that cannot be read. */
export async function checkBrokerFiles(config: AgentConfig, source: string): Promise<void> {
  const sections = [
    ...(config.ot?.sources ?? []).map((section, index) => ({ section, at: `/ot/sources/${index}` })),
    ...(config.it?.sinks ?? []).map((section, index) => ({ section, at: `/it/sinks/${index}` })),
  ];
  const issues = await Promise.all(
    sections.map(({ section, at }) =>
      section.type === 'mqtt' ? checkCredentialFiles(section.broker, `${at}/broker`) : Promise.resolve([]),
    ),
  );
  if (issues.flat().length > 0) throw new ConfigError(issues.flat(), source);
}
