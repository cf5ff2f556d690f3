/**
 * Starts a relay: the broker core, the agent listener with mTLS, the admin listener, the CA's
 * upkeep (revocation, CRL freshness, enrollment), wired together. Returns a handle to reload
 * policy and to drain.
 */
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { pino, type Logger } from 'pino';
import { createAdminListener } from './admin-listener.ts';
import { createAgentListener } from './agent-listener.ts';
import { AUDIT_EVENT, createAuditLog, type AuditLog } from './audit.ts';
import { Broker } from './broker.ts';
import type { RelayConfig } from './config.ts';
import { connectionBudget, openFileLimit, type ConnectionBudget } from './connection-budget.ts';
import { createEnrollmentListener, type EnrollmentListener } from './enrollment-listener.ts';
import { RelayMetrics } from './metrics.ts';
import { PkiUpkeep, type EnrollmentSwitch } from './pki-upkeep.ts';
import { Policy } from './policy.ts';
import { RelayRateLimits } from './rate-limits.ts';
import { RefusalAudit } from './refusal-audit.ts';
import { openRelayPki, type RelayPki } from './relay-pki.ts';
import { newTicketKeys, secureContextOptions, type RelayTlsMaterial } from './tls.ts';

/** Upkeep runs at least once a second, so a lapsed lease is noticed within a second. */
const MAX_TICK_MS = 1000;

export interface StartRelayOptions {
  readonly config: RelayConfig;
  /**
   * TLS material without a CA behind it (tests of routing and refusal): no enrollment, renewal
   * or revocation watch. Absent, the relay runs its own CA from the config's state directory.
   */
  readonly tls?: RelayTlsMaterial;
  readonly audit?: AuditLog;
  readonly log?: Logger;
}

export interface RunningRelay {
  readonly agentPort: number;
  readonly adminPort: number;
  /** The enrollment port while it listens (mode `on`, or `auto` with a token outstanding). */
  readonly enrollmentPort: number | undefined;
  readonly broker: Broker;
  readonly metrics: RelayMetrics;
  /** Applies a new configuration's policy; returns the changed sections that need a restart. */
  applyConfig(config: RelayConfig): string[];
  /** Loads new CA/CRL material with fresh ticket keys, and cuts live agents whose serial is revoked. */
  reloadTls(material: RelayTlsMaterial, revokedSerials: ReadonlySet<string>): number;
  /** Drains: closes agents with a going-away code, stops every listener. */
  close(): Promise<void>;
}

export async function startRelay(options: StartRelayOptions): Promise<RunningRelay> {
  let config = options.config;
  const log = options.log ?? pino({ level: config.log.level }, pino.destination(2));
  const audit = options.audit ?? createAuditLog(config.log.audit);
  const pki = options.tls === undefined ? await openRelayPki(config) : undefined;
  let tls: RelayTlsMaterial = pki?.tls ?? (options.tls as RelayTlsMaterial);
  const metrics = new RelayMetrics();
  const broker = new Broker({
    config,
    policy: new Policy(config.policy),
    audit,
    metrics,
    log,
    ...(pki === undefined ? {} : { renewer: pki.renewer }),
  });
  const revoked = new Set<string>(pki?.revokedSerials);
  const budget = connectionBudget(config.limits, openFileLimit());
  if (budget.lowered.length > 0) {
    log.warn({ lowered: budget.lowered }, 'connection limits lowered to keep file descriptors for agents');
  }
  const refusals = new RefusalAudit(audit);
  const agentListener = await createAgentListener({
    config,
    tls,
    broker,
    limits: new RelayRateLimits(config.limits),
    budget,
    refusals,
    metrics,
    log,
    revoked,
  });
  const adminListener = createAdminListener(metrics, broker, Date.now());
  const enrollment =
    pki === undefined ? undefined : enrollmentSwitch({ config, pki, budget, audit, refusals, log });
  const reloadTls = (material: RelayTlsMaterial, revokedSerials: ReadonlySet<string>): number => {
    tls = material;
    (agentListener.server as unknown as HttpsServer).setSecureContext(
      secureContextOptions(material, newTicketKeys()),
    );
    const newlyRevoked = [...revokedSerials].filter((serial) => !revoked.has(serial));
    for (const serial of newlyRevoked) revoked.add(serial);
    const cut = broker.disconnectSerials(revokedSerials);
    // Every revocation is audited once, connected or not, with what it cut.
    if (newlyRevoked.length > 0) {
      audit.record(AUDIT_EVENT.certificateRevoked, { serials: newlyRevoked, disconnected: cut });
    }
    return cut;
  };
  const upkeep =
    pki === undefined
      ? undefined
      : new PkiUpkeep({
          state: pki.state,
          ca: pki.ca,
          crlValidityMs: pki.crlValidityMs,
          onCrl: (crlPem, serials) => reloadTls({ ...tls, crlPem }, serials),
          enrollment: enrollment?.switch,
          audit,
          log,
        });

  await agentListener.listen({ host: config.listen.agents.host, port: config.listen.agents.port });
  try {
    await adminListener.listen({ host: config.listen.admin.host, port: config.listen.admin.port });
    await upkeep?.start();
  } catch (error) {
    await Promise.all([agentListener.close(), adminListener.close()]);
    refusals.close();
    pki?.state.close();
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
    get enrollmentPort() {
      return enrollment?.port();
    },
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
    reloadTls,
    async close() {
      clearInterval(ticker);
      await upkeep?.stop();
      broker.shutdown();
      await Promise.all([agentListener.close(), adminListener.close()]);
      refusals.close();
      pki?.state.close();
      audit.record(AUDIT_EVENT.relayStopped, {});
    },
  };
}

interface EnrollmentSwitchOptions {
  readonly config: RelayConfig;
  readonly pki: RelayPki;
  readonly budget: ConnectionBudget;
  readonly audit: AuditLog;
  readonly refusals: RefusalAudit;
  readonly log: Logger;
}

/** The enrollment listener, opened and closed on demand (a closed Fastify cannot listen again). */
function enrollmentSwitch(options: EnrollmentSwitchOptions): {
  switch: EnrollmentSwitch;
  port(): number | undefined;
} {
  const { config, pki, budget, audit, refusals, log } = options;
  let listener: EnrollmentListener | undefined;
  const { host, port, mode } = config.listen.enrollment;
  return {
    port: () => (listener === undefined ? undefined : (listener.app.server.address() as AddressInfo).port),
    switch: {
      mode,
      async open() {
        const opened = createEnrollmentListener({
          issuer: pki.issuer,
          // The chain includes the CA so an enrolling agent can check it against its pinned fingerprint.
          tls: { certPem: `${pki.tls.certPem.trimEnd()}\n${pki.tls.caPem}`, keyPem: pki.tls.keyPem },
          limits: {
            perAddressPerMinute: config.limits.enrollmentsPerMinutePerAddress,
            perMinute: config.limits.enrollmentsPerMinute,
            connections: budget.enrollmentConnections,
            connectionsPerAddress: budget.enrollmentConnectionsPerAddress,
          },
          audit,
          refusals,
          log,
          handshakeTimeoutMs: config.tls.handshakeTimeoutMs,
        });
        try {
          await opened.app.listen({ host, port });
        } catch (error) {
          await opened.close();
          throw error;
        }
        listener = opened;
      },
      async close() {
        const closing = listener;
        listener = undefined;
        await closing?.close();
      },
    },
  };
}
