/**
 * Starts a relay: the broker core, the agent listener with mTLS, the admin listener, the CA's
 * upkeep (revocation, CRL freshness, enrollment), wired together. Returns a handle to reload
 * policy and to drain.
 */
import { X509Certificate } from 'node:crypto';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { createAdminListener } from './admin-listener.ts';
import { createAgentListener } from './agent-listener.ts';
import { AUDIT_EVENT, createAuditLog, type AuditLog } from './audit.ts';
import { Broker } from './broker.ts';
import type { RelayConfig } from './config.ts';
import { connectionBudget, openFileLimit } from './connection-budget.ts';
import { createEnrollmentSwitch, type EnrollmentPortStatus } from './enrollment-switch.ts';
import { listenOn } from './listen.ts';
import { createDebugLog } from './log-destination.ts';
import { RelayMetrics } from './metrics.ts';
import { PkiUpkeep } from './pki-upkeep.ts';
import { Policy } from './policy.ts';
import { RelayRateLimits } from './rate-limits.ts';
import { RefusalAudit } from './refusal-audit.ts';
import { openRelayPki } from './relay-pki.ts';
import type { RelayServerCertificate } from '../../pki/relay-certificate.ts';
import { normalizeSerialHex } from '../../pki/serial.ts';
import { SessionTicketKeys } from './session-tickets.ts';
import { secureContextOptions, type RelayTlsMaterial } from './tls.ts';

/** Upkeep runs at least once a second, so a lapsed lease is noticed within a second. */
const MAX_TICK_MS = 1000;

export interface StartRelayOptions {
  readonly config: RelayConfig;
  /**
   * TLS material without a CA behind it (tests of routing and refusal): no enrollment, renewal
   * or revocation watch. Absent, the relay runs its own CA from the config's state directory.
   */
  readonly tls?: RelayTlsMaterial;
  /**
   * With `tls`: session ticket keys kept elsewhere (the benchmark's relay restarts on its state
   * directory's). Absent, keys of this process alone; a relay on its own CA keeps its keys in its
   * state directory (session-tickets.ts) and takes none from here.
   */
  readonly ticketKeys?: SessionTicketKeys;
  readonly audit?: AuditLog;
  readonly log?: Logger;
  /** Where the CA key's passphrase may come from (DMZ_PKI_PASSPHRASE); the process's by default. */
  readonly env?: NodeJS.ProcessEnv;
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
  /**
   * Loads new CA/CRL material with new session ticket keys (no ticket issued before resumes), and
   * cuts live agents whose serial is revoked.
   */
  reloadTls(material: RelayTlsMaterial, revokedSerials: ReadonlySet<string>): number;
  /** Drains: closes agents with a going-away code, stops every listener. */
  close(): Promise<void>;
}

export async function startRelay(options: StartRelayOptions): Promise<RunningRelay> {
  let config = options.config;
  const log = options.log ?? createDebugLog(config.log.level);
  const audit = options.audit ?? createAuditLog(config.log.audit);
  const pki = options.tls === undefined ? await openRelayPki(config, audit, options.env) : undefined;
  if (pki?.staleLockOf !== undefined) {
    log.warn({ pid: pki.staleLockOf }, 'took over the state lock of a relay that is gone');
  }
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
  let tickets: SessionTicketKeys;
  try {
    tickets =
      pki === undefined
        ? (options.ticketKeys ?? SessionTicketKeys.ephemeral(revoked))
        : await SessionTicketKeys.open({
            stateDir: config.state,
            caKeyPem: pki.ca.keyPem,
            revokedSerials: revoked,
            log,
          });
  } catch (error) {
    pki?.close();
    throw error;
  }
  const budget = connectionBudget(config.limits, openFileLimit());
  if (budget.lowered.length > 0) {
    log.warn({ lowered: budget.lowered }, 'connection limits lowered to keep file descriptors for agents');
  }
  const refusals = new RefusalAudit(audit);
  const agentListener = await createAgentListener({
    config,
    tls,
    ticketKeys: tickets.keys,
    broker,
    limits: new RelayRateLimits(config.limits),
    budget,
    refusals,
    metrics,
    log,
    revoked,
    ...(pki === undefined ? {} : { recorded: (serial: string) => pki.state.store.hasCertificate(serial) }),
  });
  metrics.observeCertificates(() => tls);
  const adminListener = createAdminListener(metrics, broker, Date.now(), () => enrollmentStatus());
  const enrollment =
    pki === undefined
      ? undefined
      : createEnrollmentSwitch({ config, pki, tls: () => tls, budget, audit, refusals, metrics, log });
  const enrollmentStatus = (): EnrollmentPortStatus => enrollment?.status() ?? { mode: 'off', state: 'off' };
  // Always the full option set: setSecureContext resets whatever is left out (the CRL included).
  const applyTls = (keys: Buffer) =>
    (agentListener.server as unknown as HttpsServer).setSecureContext(secureContextOptions(tls, keys));
  const reloadTls = (material: RelayTlsMaterial, revokedSerials: ReadonlySet<string>): number => {
    tls = material;
    const newlyRevoked = [...revokedSerials].filter((serial) => !revoked.has(serial));
    for (const serial of newlyRevoked) revoked.add(serial);
    applyTls(tickets.rotate(revoked));
    audit.record(AUDIT_EVENT.ticketKeysRotated, { reason: 'tls reload' });
    const cut = broker.disconnectSerials(revokedSerials);
    // Every revocation is audited once, connected or not, with what it cut.
    if (newlyRevoked.length > 0) {
      audit.record(AUDIT_EVENT.certificateRevoked, { serials: newlyRevoked, disconnected: cut });
    }
    return cut;
  };
  // A reissued server certificate (`dmz-pki relay-cert`): new handshakes get it, connections open
  // keep theirs. The ticket keys stay: a ticket seals a client's session, not the server's name.
  const reloadServerCertificate = (certificate: RelayServerCertificate): void => {
    tls = { ...tls, certPem: certificate.certPem, keyPem: certificate.keyPem };
    applyTls(tickets.keys);
    enrollment?.reloadCertificate();
    audit.record(AUDIT_EVENT.serverCertificateReloaded, {
      serial: certificate.serialHex,
      notAfter: new X509Certificate(certificate.certPem).validTo,
    });
  };
  const upkeep =
    pki === undefined
      ? undefined
      : new PkiUpkeep({
          state: pki.state,
          ca: pki.ca,
          crlValidityMs: pki.crlValidityMs,
          onCrl: (crlPem, serials) => reloadTls({ ...tls, crlPem }, serials),
          serverCertificate: {
            serialHex: normalizeSerialHex(new X509Certificate(tls.certPem).serialNumber),
            onReissue: reloadServerCertificate,
          },
          enrollment: enrollment?.switch,
          audit,
          log,
        });

  try {
    await listenOn('agents', agentListener, config.listen.agents);
    await listenOn('admin', adminListener, config.listen.admin);
    await upkeep?.start();
    await tickets.save();
  } catch (error) {
    await upkeep?.stop();
    await Promise.all([agentListener.close(), adminListener.close()]);
    await tickets.close();
    refusals.close();
    pki?.close();
    throw error;
  }
  tickets.rotateByAge(revoked, (keys) => {
    applyTls(keys);
    audit.record(AUDIT_EVENT.ticketKeysRotated, { reason: 'age' });
  });
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
      await tickets.close();
      refusals.close();
      pki?.close();
      audit.record(AUDIT_EVENT.relayStopped, {});
    },
  };
}
