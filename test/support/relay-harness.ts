/**
 * A real relay for integration tests: mTLS on port 0 with a throwaway CA, the real audit log
 * recorded in memory, and agents that record every session event they receive (RecordingAgent,
 * over the agent's own link) or every frame (RawAgent, for what the link's events do not show).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { RelayLink, type LinkEvents, type RelayLinkOptions } from '../../agents/link/relay-link.ts';
import { REQUEST_REFUSAL } from '../../agents/link/session-events.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import type { Role } from '../../relay/protocol/identity.ts';
import { createAuditLog } from '../../relay/server/audit.ts';
import { validateRelayConfig, type RelayConfig } from '../../relay/server/config.ts';
import { startRelay, type RunningRelay } from '../../relay/server/relay.ts';
import { FrameRecorder } from './frame-recorder.ts';
import { RawAgent, type RawAgentOptions } from './raw-agent.ts';
import type { AgentCredentials, TestPki } from './test-pki.ts';
import { waitFor } from './wait.ts';

export { FrameRecorder } from './frame-recorder.ts';

export interface AuditEntry {
  readonly event: string;
  readonly [field: string]: unknown;
}

export class AuditRecorder {
  readonly entries: AuditEntry[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      for (const line of chunk.toString().split('\n'))
        if (line !== '') this.entries.push(JSON.parse(line) as AuditEntry);
      done();
    },
  });

  waitFor(predicate: (entry: AuditEntry) => boolean, what: string): Promise<AuditEntry> {
    return waitFor(() => this.entries.find(predicate), `audit entry: ${what}`);
  }
}

/**
 * An agent on the real link, recording the frame of every session event it receives (sessionOpen,
 * subscribe, unsubscribe, deliver, dropped, sessionLease, sessionClose, request) and how the link
 * closed. Call answers (acks, errors, responses) and pings are the link's own business: a test
 * that must see those frames uses a RawAgent.
 */
export class RecordingAgent extends FrameRecorder {
  client!: RelayLink;
}

/** `events` with each session event recorded on `agent` first. */
export function recordingEvents(agent: FrameRecorder, events: LinkEvents = {}): LinkEvents {
  const { frames } = agent;
  return {
    ...events,
    sessionOffered: (offer) => {
      frames.push(offer);
      return events.sessionOffered?.(offer) ?? true;
    },
    subscribed: (subscription) => {
      frames.push(subscription);
      events.subscribed?.(subscription);
    },
    unsubscribed: (unsubscription) => {
      frames.push(unsubscription);
      events.unsubscribed?.(unsubscription);
    },
    delivery: (delivery) => {
      frames.push(delivery);
      events.delivery?.(delivery);
    },
    dropped: (dropped) => {
      frames.push(dropped);
      events.dropped?.(dropped);
    },
    lease: (lease) => {
      frames.push(lease);
      events.lease?.(lease);
    },
    sessionClosed: (closed) => {
      frames.push(closed);
      events.sessionClosed?.(closed);
    },
    request: (request) => {
      frames.push(request);
      // Without a handler of the test's, the answer the link gives when it has none.
      if (events.request === undefined) throw new DmzError(REQUEST_REFUSAL.code, REQUEST_REFUSAL.message);
      return events.request(request);
    },
    closed: (code, reason) => {
      agent.closed = { code, reason };
      events.closed?.(code, reason);
    },
  };
}

/** Connects an agent that records its session events and how its link closed. */
export async function connectRecordingAgent(
  options: RelayLinkOptions,
  events: LinkEvents = {},
): Promise<RecordingAgent> {
  const agent = new RecordingAgent();
  agent.client = await RelayLink.connect(options, recordingEvents(agent, events));
  return agent;
}

export interface TestRelay {
  readonly relay: RunningRelay;
  readonly config: RelayConfig;
  readonly url: string;
  readonly audit: AuditRecorder;
  readonly pki: TestPki;
  /** Connects an agent with a fresh certificate for role/name (or the credentials given). */
  connect(
    role: Role,
    name: string,
    events?: LinkEvents,
    credentials?: AgentCredentials,
  ): Promise<RecordingAgent>;
  /** The same with a RawAgent, which sees every frame and sends what it is told; hello done. */
  connectRaw(
    role: Role,
    name: string,
    options?: Pick<RawAgentOptions, 'answerPings'>,
    credentials?: AgentCredentials,
  ): Promise<RawAgent>;
  stop(): Promise<void>;
}

export type ConfigOverrides = Record<string, unknown>;

export function testConfig(pki: TestPki, stateDir: string, overrides: ConfigOverrides = {}): RelayConfig {
  return validateRelayConfig(
    {
      trustDomain: pki.trustDomain,
      state: stateDir,
      listen: { agents: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      log: { level: 'silent' },
      policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'], command: ['#'] }],
      ...overrides,
    },
    stateDir,
  );
}

export async function startTestRelay(pki: TestPki, overrides: ConfigOverrides = {}): Promise<TestRelay> {
  const stateDir = await mkdtemp(join(tmpdir(), 'dmz-relay-test-'));
  const config = testConfig(pki, stateDir, overrides);
  const audit = new AuditRecorder();
  const relay = await startRelay({
    config,
    tls: { caPem: pki.ca.certPem, certPem: pki.relay.certPem, keyPem: pki.relay.keyPem, crlPem: pki.crlPem },
    audit: createAuditLog(audit.stream),
    log: pino({ level: 'silent' }),
  });
  const url = `wss://127.0.0.1:${relay.agentPort}/v1/agent`;
  const agents: RecordingAgent[] = [];
  const rawAgents: RawAgent[] = [];
  return {
    relay,
    config,
    url,
    audit,
    pki,
    async connect(role, name, events = {}, credentials) {
      const { certPem, keyPem } = credentials ?? (await pki.issueAgent(role, name));
      const agent = await connectRecordingAgent({ url, certPem, keyPem, caPem: pki.ca.certPem }, events);
      agents.push(agent);
      return agent;
    },
    async connectRaw(role, name, options = {}, credentials) {
      const { certPem, keyPem } = credentials ?? (await pki.issueAgent(role, name));
      const agent = await RawAgent.open({ url, certPem, keyPem, caPem: pki.ca.certPem, ...options });
      rawAgents.push(agent);
      return agent;
    },
    async stop() {
      for (const agent of rawAgents) agent.terminate();
      await Promise.all(agents.map((agent) => agent.client.close()));
      await relay.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** A session in which one side is a RawAgent (`raw`) and the other a real agent (`agent`). */
export interface MixedSession {
  readonly raw: RawAgent;
  readonly agent: RecordingAgent;
  readonly ot: FrameRecorder;
  readonly it: FrameRecorder;
  readonly session: number;
}

/**
 * Connects OT agent `otName` and IT agent `itName`, the one of role `rawSide` raw, and opens a
 * session between them under `filter`: the raw side asks or accepts frame by frame.
 */
export async function openMixedSession(
  t: TestRelay,
  rawSide: Role,
  otName: string,
  itName: string,
  filter = `${otName}/#`,
): Promise<MixedSession> {
  if (rawSide === 'ot') {
    const raw = await t.connectRaw('ot', otName);
    const agent = await t.connect('it', itName);
    const [{ session }] = await Promise.all([
      agent.client.openSession(otName, filter),
      raw.acceptOffer(itName),
    ]);
    return { raw, agent, ot: raw, it: agent, session };
  }
  const agent = await t.connect('ot', otName);
  const raw = await t.connectRaw('it', itName);
  const { session } = await raw.openSession(otName, filter);
  return { raw, agent, ot: agent, it: raw, session };
}
