/**
 * A real relay for integration tests: mTLS on port 0 with a throwaway CA, the real audit log
 * recorded in memory, and agents that record every frame they receive.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { RelayClient, type RelayClientHandlers, type RelayClientOptions } from '../../agents/relay-client.ts';
import type { ToAgentFrame } from '../../relay/protocol/frames.ts';
import type { Role } from '../../relay/protocol/identity.ts';
import { createAuditLog } from '../../relay/server/audit.ts';
import { validateRelayConfig, type RelayConfig } from '../../relay/server/config.ts';
import { startRelay, type RunningRelay } from '../../relay/server/relay.ts';
import type { AgentCredentials, TestPki } from './test-pki.ts';
import { waitFor } from './wait.ts';

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

/** Every frame an agent connection received, and how it closed; waits with a bound. */
export class FrameRecorder {
  readonly frames: ToAgentFrame[] = [];
  closed: { code: number; reason: string } | undefined;

  /** The first recorded frame of `type` matching `predicate` (waits for it). */
  next<T extends ToAgentFrame['type']>(
    type: T,
    predicate: (frame: Extract<ToAgentFrame, { type: T }>) => boolean = () => true,
    timeoutMs = 5_000,
  ): Promise<Extract<ToAgentFrame, { type: T }>> {
    return waitFor(
      () =>
        this.frames.find(
          (frame): frame is Extract<ToAgentFrame, { type: T }> =>
            frame.type === type && predicate(frame as Extract<ToAgentFrame, { type: T }>),
        ),
      `${type} frame`,
      timeoutMs,
    );
  }

  waitClosed(timeoutMs = 5_000): Promise<{ code: number; reason: string }> {
    return waitFor(() => this.closed, 'connection close', timeoutMs);
  }
}

export class RecordingAgent extends FrameRecorder {
  client!: RelayClient;
}

/** Connects an agent that records every frame it receives and how its connection closed. */
export async function connectRecordingAgent(
  options: RelayClientOptions,
  handlers: RelayClientHandlers = {},
): Promise<RecordingAgent> {
  const agent = new RecordingAgent();
  agent.client = await RelayClient.connect(options, {
    ...handlers,
    onFrame: (frame) => {
      agent.frames.push(frame);
      handlers.onFrame?.(frame);
    },
    onClose: (code, reason) => {
      agent.closed = { code, reason };
      handlers.onClose?.(code, reason);
    },
  });
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
    handlers?: RelayClientHandlers,
    credentials?: AgentCredentials,
  ): Promise<RecordingAgent>;
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
  return {
    relay,
    config,
    url,
    audit,
    pki,
    async connect(role, name, handlers = {}, credentials) {
      const { certPem, keyPem } = credentials ?? (await pki.issueAgent(role, name));
      const agent = await connectRecordingAgent({ url, certPem, keyPem, caPem: pki.ca.certPem }, handlers);
      agents.push(agent);
      return agent;
    },
    async stop() {
      await Promise.all(agents.map((agent) => agent.client.close()));
      await relay.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
