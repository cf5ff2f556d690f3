/**
 * A compromised relay: it holds the CA and the relay's own key (here, a scripted relay on the
 * test's CA), so it can offer the OT agent a session "from hmi-1" and send any request frame in
 * it. What it does not hold is hmi-1's own write key, which the OT agent pins: every write it
 * makes up is refused, and the device is untouched. Only a command hmi-1 really signed gets done,
 * and only once.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  readEnrolledIdentity,
  storeCredentials,
  prepareCredentialDirectory,
} from '../../../../agents/credentials.ts';
import type { Agent } from '../../../../agents/runtime/agent.ts';
import { validateAgentConfig } from '../../../../agents/runtime/config.ts';
import { MAX_COMMANDS_IN_FLIGHT } from '../../../../agents/ot/writes/write-service.ts';
import type { ToRelayFrameOf } from '../../../../relay/protocol/frames.ts';
import { startAgent } from '../../../support/agent-plant.ts';
import { ModbusTestDevice } from '../../../support/modbus-device.ts';
import {
  startScriptedRelay,
  welcomeFrame,
  type ScriptedPeer,
  type ScriptedRelay,
} from '../../../support/scripted-relay.ts';
import { createTestPki, type TestPki } from '../../../support/test-pki.ts';
import { waitFor } from '../../../support/wait.ts';
import { claimsFor, makeKey, signed, tampered, topic, unsigned, type TestKey } from './write-fixture.ts';

const SESSION = 41;
const SETPOINT = 10;

describe('a compromised relay cannot write a point that needs a signature', () => {
  let pki: TestPki;
  let relay: ScriptedRelay;
  let peer: ScriptedPeer;
  let device: ModbusTestDevice;
  let ot: Agent;
  let dir: string;
  let hmi1: TestKey;
  let nextId = 1;

  /** Sends a request frame as the relay, and waits for the OT agent's response to it. */
  async function request(payload: Uint8Array): Promise<ToRelayFrameOf<'response'>> {
    const id = nextId++;
    peer.send({
      type: 'request',
      session: SESSION,
      id,
      topic: topic('setpoint'),
      timeoutMs: 10_000,
      payload,
    });
    return waitFor(
      () =>
        peer.received.find(
          (frame): frame is ToRelayFrameOf<'response'> => frame.type === 'response' && frame.id === id,
        ),
      `response ${id}`,
    );
  }

  before(async () => {
    pki = await createTestPki();
    hmi1 = makeKey();
    device = await ModbusTestDevice.start();
    device.setHolding(SETPOINT, [7]);
    dir = await mkdtemp(join(tmpdir(), 'dmz-forging-relay-'));
    const credentials = join(dir, 'credentials');
    const issued = await pki.issueAgent('ot', 'press-7');
    const pems = { certPem: issued.certPem, keyPem: issued.keyPem, caPem: pki.ca.certPem };
    await prepareCredentialDirectory(credentials, { force: false });
    await storeCredentials(credentials, { ...pems, identity: readEnrolledIdentity(pems) });
    // The relay offers a session as if hmi-1 had asked for it: it names the peer, and nobody checks it but the relay.
    relay = await startScriptedRelay(pki, (connected) =>
      connected.send(welcomeFrame('press-7'), {
        type: 'sessionOpen',
        session: SESSION,
        peer: 'hmi-1',
        filter: 'press-7/#',
        leaseMs: 30_000,
      }),
    );
    const config = validateAgentConfig(
      {
        credentials,
        state: join(dir, 'state'),
        relay: { url: relay.url },
        log: { level: 'silent' },
        ot: {
          sources: [
            {
              type: 'modbus',
              name: 'line1',
              devices: [
                {
                  host: device.host,
                  port: device.port,
                  points: [{ name: 'setpoint', table: 'holding', address: SETPOINT, type: 'int16' }],
                },
              ],
            },
          ],
          writes: {
            points: [
              {
                point: 'line1/setpoint',
                type: 'number',
                min: 0,
                max: 120,
                writers: ['hmi-1'],
                signedBy: [{ agent: 'hmi-1', jwk: hmi1.jwk }],
              },
            ],
          },
        },
      },
      dir,
    );
    ot = await startAgent(config);
    peer = await relay.peer();
    await waitFor(
      () => peer.received.some((frame) => frame.type === 'sessionAccept'),
      'the session accepted',
    );
  });

  after(async () => {
    await ot?.stop();
    await relay?.close();
    await device?.down();
    await rm(dir, { recursive: true, force: true });
  });

  const forgeries: { name: string; payload: () => Promise<Uint8Array> | Uint8Array; code: string }[] = [
    {
      name: 'an unsigned command',
      payload: () => unsigned(claimsFor('hmi-1', 'setpoint', 99)),
      code: 'AGENT_ERR_WRITE_SIGNATURE_MISSING',
    },
    {
      name: "a command signed with the relay's own key",
      payload: () => signed(claimsFor('hmi-1', 'setpoint', 99), makeKey()),
      code: 'AGENT_ERR_WRITE_KEY_NOT_PINNED',
    },
    {
      name: "a command signed with the relay's key under hmi-1's key id",
      payload: () => signed(claimsFor('hmi-1', 'setpoint', 99), { ...makeKey(), kid: hmi1.kid }),
      code: 'AGENT_ERR_WRITE_SIGNATURE_INVALID',
    },
    {
      name: "hmi-1's genuine command with the value changed",
      payload: () => tampered(claimsFor('hmi-1', 'setpoint', 42), hmi1, { value: 99 }),
      code: 'AGENT_ERR_WRITE_SIGNATURE_INVALID',
    },
  ];

  for (const forgery of forgeries) {
    it(`refuses ${forgery.name}; the register keeps its value`, async () => {
      const from = device.requests.length;
      const response = await request(await forgery.payload());
      assert.equal(response.error?.code, forgery.code);
      assert.equal(device.holding[SETPOINT], 7);
      assert.deepEqual(
        device.requestsSince(from).filter((sent) => sent.functionCode === 6 || sent.functionCode === 16),
        [],
      );
    });
  }

  it('bounds a flood of commands: beyond MAX_COMMANDS_IN_FLIGHT at once, refused busy before any work', async () => {
    const flood = MAX_COMMANDS_IN_FLIGHT + 6;
    const first = nextId;
    nextId += flood;
    const garbage = new TextEncoder().encode('not a command');
    // Corked: the frames arrive in one TLS record, so the agent takes them all in one go.
    peer.send(
      ...Array.from({ length: flood }, (_, index) => ({
        type: 'request' as const,
        session: SESSION,
        id: first + index,
        topic: topic('setpoint'),
        timeoutMs: 10_000,
        payload: garbage,
      })),
    );
    const codes = await waitFor(() => {
      const answered = peer.received.filter(
        (frame): frame is ToRelayFrameOf<'response'> =>
          frame.type === 'response' && frame.id >= first && frame.id < first + flood,
      );
      return answered.length === flood ? answered.map((frame) => frame.error?.code) : undefined;
    }, 'every request answered');
    assert.equal(codes.filter((code) => code === 'AGENT_ERR_WRITE_BUSY').length, 6);
    assert.equal(codes.filter((code) => code === 'AGENT_ERR_WRITE_MALFORMED').length, MAX_COMMANDS_IN_FLIGHT);
  });

  it("executes what hmi-1 really signed, once: the relay's replay of it does nothing", async () => {
    const genuine = await signed(claimsFor('hmi-1', 'setpoint', 42), hmi1);
    assert.equal((await request(genuine)).error, undefined);
    assert.equal(device.holding[SETPOINT], 42);
    device.setHolding(SETPOINT, [7]);
    assert.equal((await request(genuine)).error?.code, 'AGENT_ERR_WRITE_REPLAYED');
    assert.equal(device.holding[SETPOINT], 7);
  });
});
