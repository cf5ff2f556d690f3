/**
 * A worker's fleet: many idle agents (or MQTT / NATS clients) held open at once, for what a
 * connection costs a server, and, for the relay, re-connecting by themselves with full-jitter
 * backoff when the relay restarts (the reconnect storm). Every loop is bounded: in attempts per
 * agent and by a deadline on the monotonic clock.
 */
import { createPublicKey } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { reconnectDelayMs } from '../../agents/link/backoff.ts';
import { issueAgentCertificate } from '../../pki/certificate-template.ts';
import { connectBenchClient, type BenchClient } from './bench-clients.ts';
import { monotonicMs } from './clock.ts';
import type { ClientTls, Endpoint, FleetStatus, ReconnectPolicy } from './worker-protocol.ts';

/** Lifetime of a fleet agent's certificate: the run, with a wide margin. */
const FLEET_CERTIFICATE_LIFETIME_MS = 6 * 3600 * 1000;
/** Distinct failure messages kept for the report. */
const MAX_ERRORS_KEPT = 5;
/** A failed first connection (before any storm) is tried this many times in all. */
const INITIAL_ATTEMPTS = 3;
const INITIAL_RETRY_MS = 200;

export class Fleet {
  readonly #credentials: ClientTls[] = [];
  readonly #agents: FleetAgent[] = [];
  readonly #errors = new Set<string>();
  #policy: ReconnectPolicy | undefined;
  #closing = false;
  attempts = 0;
  failures = 0;

  /** Certificates for relay agents `names` (role ot), signed here so that two workers share the work. */
  async issue(
    ca: { certPem: string; keyPem: string },
    agentKeyPem: string,
    trustDomain: string,
    names: readonly string[],
  ): Promise<number> {
    const publicKeyPem = createPublicKey(agentKeyPem).export({ type: 'spki', format: 'pem' }).toString();
    for (const name of names) {
      const issued = await issueAgentCertificate({
        ca,
        publicKeyPem,
        identity: { trustDomain, role: 'ot', name },
        lifetimeMs: FLEET_CERTIFICATE_LIFETIME_MS,
      });
      this.#credentials.push({ caPem: ca.certPem, certPem: issued.certPem, keyPem: agentKeyPem });
    }
    return this.#credentials.length;
  }

  /** Adds `count` connected agents, `concurrency` connecting at once, within `timeLimitMs`. */
  async connect(
    endpoint: Endpoint,
    count: number,
    concurrency: number,
    timeLimitMs: number,
  ): Promise<FleetStatus> {
    const deadline = monotonicMs() + timeLimitMs;
    const first = this.#agents.length;
    for (let index = first; index < first + count; index++) {
      const tls = endpoint.kind === 'relay' ? this.#credentials[index] : endpoint.tls;
      if (tls === undefined) throw new Error(`no certificate for fleet agent ${index}: issue more first`);
      this.#agents.push(new FleetAgent(this, { ...endpoint, tls }, `fleet-${process.pid}-${index}`));
    }
    let next = first;
    const lane = async () => {
      while (next < first + count && monotonicMs() < deadline) {
        const agent = this.#agents[next++]!;
        for (let attempt = 1; attempt <= INITIAL_ATTEMPTS && monotonicMs() < deadline; attempt++) {
          if (await agent.connectOnce(Math.max(1, deadline - monotonicMs()))) break;
          await delay(INITIAL_RETRY_MS);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
    return this.status();
  }

  /** From now on, an agent whose connection ends reconnects by itself under `policy`. */
  reconnect(policy: ReconnectPolicy): void {
    this.#policy = policy;
  }

  get policy(): ReconnectPolicy | undefined {
    return this.#closing ? undefined : this.#policy;
  }

  status(): FleetStatus {
    return {
      connected: this.#agents.filter((agent) => agent.connected).length,
      attempts: this.attempts,
      failures: this.failures,
      errors: [...this.#errors],
    };
  }

  recordFailure(error: unknown): void {
    this.failures++;
    if (this.#errors.size < MAX_ERRORS_KEPT)
      this.#errors.add(error instanceof Error ? error.message : String(error));
  }

  /** Closes every agent and starts afresh (the certificates stay). */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(this.#agents.map((agent) => agent.close()));
    this.#agents.length = 0;
    this.#errors.clear();
    this.#policy = undefined;
    this.#closing = false;
    this.attempts = 0;
    this.failures = 0;
  }
}

class FleetAgent {
  readonly #fleet: Fleet;
  readonly #endpoint: Endpoint;
  readonly #name: string;
  #client: BenchClient | undefined;
  #attempts = 0;

  constructor(fleet: Fleet, endpoint: Endpoint, name: string) {
    this.#fleet = fleet;
    this.#endpoint = endpoint;
    this.#name = name;
  }

  get connected(): boolean {
    return this.#client !== undefined && !this.#client.closed;
  }

  /** One attempt; true if connected. */
  async connectOnce(timeoutMs: number): Promise<boolean> {
    this.#attempts++;
    this.#fleet.attempts++;
    try {
      this.#client = await connectBenchClient(this.#endpoint, this.#name, {
        connectTimeoutMs: timeoutMs,
        onClose: () => this.#onClose(),
      });
      return true;
    } catch (error) {
      this.#fleet.recordFailure(error);
      return false;
    }
  }

  close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    return client?.close() ?? Promise.resolve();
  }

  #onClose(): void {
    const policy = this.#fleet.policy;
    if (policy === undefined) return;
    void this.#reconnect(policy);
  }

  /**
   * The agent link's full-jitter backoff (agents/link/backoff.ts), even before the first attempt: a
   * fleet dropped at once must not return in one lump.
   */
  async #reconnect(policy: ReconnectPolicy): Promise<void> {
    const limits = { baseMs: policy.baseMs, capMs: policy.capMs };
    await delay(reconnectDelayMs(0, limits));
    for (let failures = 0; this.#attempts < policy.maxAttemptsPerAgent;) {
      if (this.#fleet.policy === undefined || monotonicMs() > policy.untilMonotonicMs) return;
      if (await this.connectOnce(policy.connectTimeoutMs)) return;
      failures++;
      await delay(reconnectDelayMs(failures, limits));
    }
  }
}
