/**
 * Starts a relay: the broker core, the agent listener with mTLS, the admin listener, and the
 * periodic upkeep, wired together. Returns a handle to reload policy and TLS, and to stop.
 */
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { isDeepStrictEqual } from 'node:util';
import { createAdminListener } from './admin-listener.ts';
import { createAgentListener } from './agent-listener.ts';
import { AUDIT_EVENT, createAuditLog, type AuditLog } from './audit.ts';
import { Broker } from './broker.ts';
import type { RelayConfig } from './config.ts';
import { RelayMetrics } from './metrics.ts';
import { Policy } from './policy.ts';
import { RelayRateLimits } from './rate-limits.ts';
import { loadTlsMaterial, newTicketKeys, secureContextOptions, type RelayTlsMaterial } from './tls.ts';

/** Upkeep runs at least once a second, so a lapsed lease is noticed within a second. */
const MAX_TICK_MS = 1000;

export interface StartRelayOptions {
  readonly config: RelayConfig;
  /** TLS material; read from the config's state directory when absent. */
  readonly tls?: RelayTlsMaterial;
  readonly audit?: AuditLog;
  readonly log?: Logger;
}

export interface RunningRelay {
  readonly agentPort: number;
  readonly adminPort: number;
  readonly broker: Broker;
  readonly metrics: RelayMetrics;
  /** Applies a new configuration's policy; other changed sections need a restart (returned). */
  applyConfig(config: RelayConfig): string[];
  /** Loads new CA/CRL/certificate material with fresh ticket keys, and cuts revoked agents. */
  reloadTls(material: RelayTlsMaterial, revokedSerials: ReadonlySet<string>): number;
  /** Drains: refuses new connections, closes agents with a going-away code, stops listeners. */
  close(): Promise<void>;
}

export async function startRelay(options: StartRelayOptions): Promise<RunningRelay> {
  let config = options.config;
  const log = options.log ?? pino({ level: config.log.level }, pino.destination(2));
  const audit = options.audit ?? createAuditLog(config.log.audit);
  const tls = options.tls ?? (await loadTlsMaterial(config.state));
  const metrics = new RelayMetrics();
  const broker = new Broker({ config, policy: new Policy(config.policy), audit, metrics, log });
  const revoked = new Set<string>();
  const agentListener = await createAgentListener({
    config,
    tls,
    broker,
    limits: new RelayRateLimits(config.limits),
    audit,
    metrics,
    log,
    revoked,
  });
  const startedAt = Date.now();
  const adminListener = createAdminListener(metrics, broker, startedAt);
  await agentListener.listen({ host: config.listen.agents.host, port: config.listen.agents.port });
  try {
    await adminListener.listen({ host: config.listen.admin.host, port: config.listen.admin.port });
  } catch (error) {
    await agentListener.close();
    throw error;
  }
  const ticker = setInterval(() => broker.tick(), Math.min(MAX_TICK_MS, config.sessions.leaseMs / 6));
  ticker.unref();
  const agentPort = (agentListener.server.address() as AddressInfo).port;
  const adminPort = (adminListener.server.address() as AddressInfo).port;
  audit.record(AUDIT_EVENT.relayStarted, { agentPort, adminPort, rules: config.policy.length });

  return {
    agentPort,
    adminPort,
    broker,
    metrics,
    applyConfig(next) {
      const restartRequired = Object.keys(next).filter(
        (key) =>
          key !== 'policy' &&
          !isDeepStrictEqual(next[key as keyof RelayConfig], config[key as keyof RelayConfig]),
      );
      const outcome = broker.applyPolicy(new Policy(next.policy));
      config = { ...config, policy: next.policy };
      audit.record(AUDIT_EVENT.policyReloaded, { rules: next.policy.length, ...outcome, restartRequired });
      return restartRequired;
    },
    reloadTls(material, revokedSerials) {
      (agentListener.server as unknown as HttpsServer).setSecureContext(
        secureContextOptions(material, newTicketKeys()),
      );
      for (const serial of revokedSerials) revoked.add(serial);
      const cut = broker.disconnectSerials(revokedSerials);
      if (cut > 0) audit.record(AUDIT_EVENT.certificateRevoked, { disconnected: cut });
      return cut;
    },
    async close() {
      clearInterval(ticker);
      broker.shutdown();
      await Promise.all([agentListener.close(), adminListener.close()]);
      audit.record(AUDIT_EVENT.relayStopped, {});
    },
  };
}
