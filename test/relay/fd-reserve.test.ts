/**
 * File descriptors kept for agents: `dmz-relay` runs as a real process under a low open-files
 * limit (as a small appliance or a strict systemd unit may set it), strangers open hundreds of
 * slow connections to the enrollment port from many addresses, and an enrolled agent still
 * connects: the enrollment port holds at most its share of the descriptors.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

const ROOT = join(import.meta.dirname, '..', '..');
const RELAY_BIN = join(ROOT, 'bin', 'dmz-relay.js');
/** Low enough that the attack below would exhaust it; high enough for Node, tsx and SQLite. */
const OPEN_FILES = 200;
/** Strangers: many source addresses, each opening as many connections as it may and more. */
const SOURCES = 40;
const CONNECTIONS_PER_SOURCE = 10;
const START_BOUND_MS = 15_000;

describe('relay file descriptors under an enrollment-port flood', () => {
  let dir: string;
  let relay: ChildProcess;
  let exited = false;
  let stderr = '';
  let agent: EnrolledAgent;
  let ports: { agents: number; admin: number; enrollment: number };
  const clients: SlowClient[] = [];

  const auditEntries = async (): Promise<AuditEntry[]> => {
    const text = await readFile(join(dir, 'audit.log'), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as AuditEntry);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-fd-reserve-'));
    await createCaState(join(dir, 'state'));
    agent = await enrollInProcess(join(dir, 'state'), 'ot', 'press-7');
    ports = { agents: await freePort(), admin: await freePort(), enrollment: await freePort() };
    await writeFile(
      join(dir, 'relay.yaml'),
      stringify({
        trustDomain: CA_STATE_TRUST_DOMAIN,
        state: './state',
        listen: {
          agents: { host: '127.0.0.1', port: ports.agents },
          admin: { host: '127.0.0.1', port: ports.admin },
          enrollment: { host: '127.0.0.1', port: ports.enrollment, mode: 'on' },
        },
        log: { audit: './audit.log', level: 'warn' },
        policy: [{ role: 'ot' }],
      }),
    );
    // `ulimit -n` sets the soft and the hard limit, so Node cannot raise it at start.
    relay = spawn(
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
    relay.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    relay.once('exit', () => (exited = true));
    await waitFor(
      async () => exited || (await auditEntries()).some((entry) => entry.event === 'relay.started'),
      'relay.started',
      START_BOUND_MS,
      50,
    );
    assert.equal(exited, false, `relay exited at start: ${stderr}`);
  });
  after(async () => {
    for (const client of clients) client.stop();
    if (!exited) {
      relay.kill('SIGKILL');
      await waitFor(() => exited, 'relay killed');
    }
    await rm(dir, { recursive: true, force: true });
  });

  it(`relay - ${SOURCES * CONNECTIONS_PER_SOURCE} slow enrollment connections from ${SOURCES} addresses under a ${OPEN_FILES}-file limit: an agent still connects`, async () => {
    for (let source = 0; source < SOURCES; source++) {
      for (let index = 0; index < CONNECTIONS_PER_SOURCE; index++) {
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
      ...agent,
      connectTimeoutMs: 5_000,
    });
    assert.equal(connected.client.welcome.name, 'press-7');
    await connected.client.close();
    assert.equal(exited, false, `relay died: ${stderr}`);
  });
});
