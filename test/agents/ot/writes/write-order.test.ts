/**
 * Commands to one point are executed in the order they arrived: an HMI that sends 10 and then 20
 * must leave the device at 20, even when the first command takes longer to check than the second
 * (here: it names no key id, so it is tried against both keys pinned for its writer, the wrong one
 * first, while the second names its key). The write service runs in-process against a real Modbus
 * device; the relay has no part in the order once the frames have arrived.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CompactSign } from 'jose';
import {
  COMMAND_TYPE,
  newNonce,
  signCommand,
  type WriteClaims,
} from '../../../../agents/ot/writes/command.ts';
import { AGENT } from '../sources/modbus/modbus-fixture.ts';
import {
  makeKey,
  SETPOINT,
  SETPOINT_TOPIC,
  startInProcessWrites,
  type InProcessWrites,
} from './write-fixture.ts';

describe('writes to one point', () => {
  let writes: InProcessWrites;
  const wrong = makeKey();
  const right = makeKey();

  before(async () => {
    writes = await startInProcessWrites({
      signedBy: [wrong, right].map((key) => ({ agent: 'hmi-1', jwk: key.jwk, kid: key.kid })),
    });
  });
  after(() => writes?.close());

  const claims = (value: number): WriteClaims => ({
    iss: 'hmi-1',
    aud: AGENT,
    topic: SETPOINT_TOPIC,
    value,
    deadline: Date.now() + 30_000,
    nonce: newNonce(),
  });
  /** Signed by the right key, with no key id: checked against both pinned keys, the wrong one first. */
  const withoutKid = async (value: number) =>
    new TextEncoder().encode(
      await new CompactSign(new TextEncoder().encode(JSON.stringify(claims(value))))
        .setProtectedHeader({ alg: 'EdDSA', typ: COMMAND_TYPE })
        .sign(right.privateKey),
    );

  it('are executed in the order they arrived', async () => {
    const { device } = writes;
    for (let round = 0; round < 5; round++) {
      const first = await withoutKid(100 + round);
      const second = await signCommand(claims(200 + round), right);
      const sent = device.requests.length;
      // Both arrive in one go, as two frames read from one WebSocket message batch.
      await Promise.all([writes.request(2 * round, first), writes.request(2 * round + 1, second)]);
      const written = device.requestsSince(sent).filter((r) => r.functionCode === 6);
      assert.equal(written.length, 2);
      assert.equal(device.holding[SETPOINT], 200 + round, `round ${round}: the later command wins`);
    }
  });
});
