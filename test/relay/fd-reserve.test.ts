/**
 * File descriptors kept for agents: `dmz-relay` runs as a real process under a low open-files
 * limit (as a small appliance or a strict systemd unit may set it), others hold as many
 * connections as they can get, and an enrolled agent still connects. The others are strangers on
 * the enrollment port, which holds at most its share of the descriptors, or another agent's
 * authenticated connections that never upgrade.
 *
 * The second case was found by an outside audit: a connection stopped counting at the gate once
 * its TLS handshake succeeded, and keep-alive held it open without an upgrade, so one compromised
 * agent (trusted only for its own identity) connecting from a few addresses held every
 * descriptor. The agent listener (relay/server/agent-listener.ts) now keeps the gate's slot until
 * the WebSocket is established (gate.release), cuts a connection not upgraded within the
 * handshake timeout and allows no keep-alive, so such connections stay within the handshake share.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import {
  CA_STATE_TRUST_DOMAIN,
  createCaState,
  enrollInProcess,
  type EnrolledAgent,
} from '../support/ca-state.ts';
import { freePort } from '../support/ports.ts';
import { connectRecordingAgent, type AuditEntry } from '../support/relay-harness.ts';
import { startSlowClient, type SlowClient } from '../support/slow-client.ts';
import { waitFor } from '../support/wait.ts';
import { spawnChild } from '../support/child-processes.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const RELAY_BIN = join(ROOT, 'bin', 'dmz-relay.js');
/** Low enough that either attack below would exhaust it; high enough for Node, tsx and SQLite. */
const OPEN_FILES = 200;
const START_BOUND_MS = 15_000;
/** Strangers: many source addresses, each opening as many connections as it may and more. */
const FLOOD_SOURCES = 40;
const FLOOD_CONNECTIONS_PER_SOURCE = 10;
/** The compromised agent: a few addresses, each well inside the per-address rate limit (a third). */
const HOLDER_SOURCES = 6;
const HOLDER_CONNECTIONS_PER_SOURCE = 40;
/** At most this many handshakes at once from one address: under handshakesInProgressPerAddress. */
const HOLDER_BATCH = 8;

/** A `dmz-relay` process under OPEN_FILES, with OT agents enrolled before it started. */
interface LimitedRelay<Name extends string> {
  readonly ports: { readonly agents: number; readonly admin: number; readonly enrollment: number };
  readonly agents: Readonly<Record<Name, EnrolledAgent>>;
  readonly exited: () => boolean;
  /** What the relay wrote to stderr so far: the reason, when it died. */
  readonly stderr: () => string;
  readonly stop: () => Promise<void>;
}

async function startLimitedRelay<Name extends string>(
  enrollment: 'on' | 'off',
  names: readonly Name[],
): Promise<LimitedRelay<Name>> {
  const dir = await mkdtemp(join(tmpdir(), 'dmz-fd-reserve-'));
  const stateDir = join(dir, 'state');
  await createCaState(stateDir);
  const agents = {} as Record<Name, EnrolledAgent>;
  for (const name of names) agents[name] = await enrollInProcess(stateDir, 'ot', name);
  const ports = { agents: await freePort(), admin: await freePort(), enrollment: await freePort() };
  await writeFile(
    join(dir, 'relay.yaml'),
    stringify({
      trustDomain: CA_STATE_TRUST_DOMAIN,
      state: './state',
      listen: {
        agents: { host: '127.0.0.1', port: ports.agents },
        admin: { host: '127.0.0.1', port: ports.admin },
        enrollment: { host: '127.0.0.1', port: ports.enrollment, mode: enrollment },
      },
      log: { audit: './audit.log', level: 'warn' },
      policy: [{ role: 'ot' }],
    }),
  );
  // `ulimit -n` sets the soft and the hard limit, so Node cannot raise it at start.
  const child = spawnChild(
    'bash',
    [
      '-c',
      `ulimit -n ${OPEN_FILES} && exec "$0" "$@"`,
      process.execPath,
      RELAY_BIN,
      '--config',
      join(dir, 'relay.yaml'),
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let exited = false;
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.once('exit', () => (exited = true));
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGKILL');
      await waitFor(() => exited, 'relay killed');
    }
    await rm(dir, { recursive: true, force: true });
  };
  const started = async (): Promise<boolean> => {
    const text = await readFile(join(dir, 'audit.log'), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .some((line) => (JSON.parse(line) as AuditEntry).event === 'relay.started');
  };
  try {
    await waitFor(async () => exited || (await started()), 'relay.started', START_BOUND_MS, 50);
    assert.equal(exited, false, `relay exited at start: ${stderr}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { ports, agents, exited: () => exited, stderr: () => stderr, stop };
}

describe('relay file descriptors under an enrollment-port flood', () => {
  let relay: LimitedRelay<'press-7'> | undefined;
  const clients: SlowClient[] = [];

  before(async () => {
    relay = await startLimitedRelay('on', ['press-7']);
  });
  after(async () => {
    for (const client of clients) client.stop();
    await relay?.stop();
  });

  it(`relay - ${FLOOD_SOURCES * FLOOD_CONNECTIONS_PER_SOURCE} slow enrollment connections from ${FLOOD_SOURCES} addresses under a ${OPEN_FILES}-file limit: an agent still connects`, async () => {
    const { ports, agents, exited, stderr } = relay!;
    for (let source = 0; source < FLOOD_SOURCES; source++) {
      for (let index = 0; index < FLOOD_CONNECTIONS_PER_SOURCE; index++) {
        clients.push(
          startSlowClient({
            port: ports.enrollment,
            localAddress: `127.0.1.${source + 1}`,
            dribble: 'body',
            intervalMs: 1_000,
            maxMs: 30_000,
          }),
        );
      }
    }
    const established = await Promise.all(clients.map((client) => client.established));
    const held = established.filter(Boolean).length;
    assert.ok(held > 0, 'no slow client got in at all');
    assert.ok(held <= OPEN_FILES / 8, `${held} slow connections held: more than the enrollment share`);

    const connected = await connectRecordingAgent({
      url: `wss://127.0.0.1:${ports.agents}/v1/agent`,
      ...agents['press-7'],
      connectTimeoutMs: 5_000,
    });
    assert.equal(connected.client.welcome.name, 'press-7');
    await connected.client.close();
    assert.equal(exited(), false, `relay died: ${stderr()}`);
  });
});

describe('relay file descriptors versus one agent holding non-upgraded connections', () => {
  let relay: LimitedRelay<'press-7' | 'mallory'> | undefined;
  const held: TLSSocket[] = [];

  before(async () => {
    relay = await startLimitedRelay('off', ['press-7', 'mallory']);
  });
  after(async () => {
    for (const socket of held) socket.destroy();
    await relay?.stop();
  });

  /** One authenticated connection that asks for a 404 and would keep the socket (keep-alive). */
  function holdOne(localAddress: string): Promise<boolean> {
    const { ports, agents } = relay!;
    return new Promise((resolve) => {
      const options: ConnectionOptions & { localAddress: string } = {
        host: '127.0.0.1',
        port: ports.agents,
        localAddress,
        ca: agents.mallory.caPem,
        cert: agents.mallory.certPem,
        key: agents.mallory.keyPem,
        servername: 'localhost',
      };
      const socket = connectTls(options);
      socket.on('error', () => resolve(false));
      socket.once('close', () => resolve(false));
      socket.once('secureConnect', () => {
        held.push(socket);
        socket.resume();
        socket.write('GET /not-the-upgrade HTTP/1.1\r\nHost: relay\r\n\r\n');
        resolve(true);
      });
    });
  }

  it(`relay - one agent holding non-upgraded connections from ${HOLDER_SOURCES} addresses under a ${OPEN_FILES}-file limit: another agent still connects`, async () => {
    const { ports, agents, exited, stderr } = relay!;
    let holding = 0;
    for (let index = 0; index < HOLDER_CONNECTIONS_PER_SOURCE; index += HOLDER_BATCH) {
      const batch = await Promise.all(
        Array.from({ length: HOLDER_SOURCES * HOLDER_BATCH }, (_, n) =>
          holdOne(`127.0.4.${(n % HOLDER_SOURCES) + 1}`),
        ),
      );
      holding += batch.filter(Boolean).length;
    }
    assert.ok(holding > 0, 'the compromised agent got no connection at all');

    let outcome = 'connected';
    try {
      const agent = await connectRecordingAgent({
        url: `wss://127.0.0.1:${ports.agents}/v1/agent`,
        ...agents['press-7'],
        connectTimeoutMs: 5_000,
      });
      assert.equal(agent.client.welcome.name, 'press-7');
      await agent.client.close();
    } catch (error) {
      outcome = (error as Error).message;
    }
    assert.equal(exited(), false, `relay died: ${stderr()}`);
    assert.equal(
      outcome,
      'connected',
      `an honest agent could not connect while another agent held ${holding} non-upgraded connections`,
    );
  });
});
