/**
 * What happens to a stream in the middle of a transfer, with bytes in flight and in every buffer:
 * an end that resets is a reset at the other end (never a FIN, which would pass a cut transfer off
 * as complete); a policy reload that drops one grant resets exactly its streams at both ends while
 * the other transfer completes byte for byte; revoking the OT agent resets its streams and the
 * entrance goes on listening, refusing at once. Each close is audited with its reason.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { after, before, describe, it, type TestContext } from 'node:test';
import { testConfig } from '../../support/relay-harness.ts';
import { waitFor } from '../../support/wait.ts';
import {
  connectClient,
  echo,
  IT_NAME,
  OT_NAME,
  service,
  startTarget,
  startTunnelPlant,
  type TunnelClient,
  type TunnelPlant,
} from './tunnel-fixture.ts';

/** Several windows each way, so every buffer on the path holds bytes when the cut comes. */
const TRANSFER_BYTES = 8 * 1024 * 1024;
/** Bytes a client reads before the cut: the transfer is under way. */
const UNDER_WAY_BYTES = 256 * 1024;
/** Generous for a loaded machine; the relay acts at once (measured and reported as a diagnostic). */
const CLOSE_BOUND_MS = 5_000;

describe('tunnel - cut in the middle of a transfer', () => {
  let plant: TunnelPlant;
  let download: Awaited<ReturnType<typeof startTarget>>;
  let resetting: Awaited<ReturnType<typeof startTarget>>;
  let echoTarget: Awaited<ReturnType<typeof startTarget>>;
  /** How each echo-target connection ended: 'end' or the error code. */
  const echoEnds: string[] = [];
  const payload = randomBytes(TRANSFER_BYTES);

  before(async () => {
    download = await startTarget((socket) => socket.end(payload));
    // Answers with part of the transfer, then resets at the client's next byte: a device that
    // crashed mid-answer.
    resetting = await startTarget((socket) => {
      socket.write(payload.subarray(0, UNDER_WAY_BYTES));
      socket.once('data', () => socket.resetAndDestroy());
    });
    echoTarget = await startTarget((socket: Socket) => {
      socket.once('end', () => echoEnds.push('end'));
      socket.once('error', (error: Error & { code?: string }) => echoEnds.push(error.code ?? 'error'));
      echo(socket);
    });
    plant = await startTunnelPlant({
      services: [
        service('download', download.address),
        service('kept', download.address),
        service('resetting', resetting.address),
        service('echo', echoTarget.address),
      ],
      entrances: ['download', 'kept', 'resetting', 'echo'],
    });
  });
  after(async () => {
    await plant.close();
    for (const target of [download, resetting, echoTarget]) await target.close();
  });

  async function underWay(name: string): Promise<TunnelClient> {
    const client = await connectClient(plant.address(name));
    await waitFor(() => client.bytes() >= UNDER_WAY_BYTES, `the ${name} transfer under way`, 30_000);
    return client;
  }

  /** Waits for `client` to be reset, and reports how long after `since` that was. */
  async function resetWithin(t: TestContext, client: TunnelClient, since: number): Promise<void> {
    assert.equal(await client.ended, 'ECONNRESET');
    const ms = Date.now() - since;
    t.diagnostic(`client reset ${ms} ms after the cut`);
    assert.ok(ms < CLOSE_BOUND_MS);
  }

  it("a target's reset mid-answer resets the IT client, and is audited as the target's failure", async () => {
    const client = await underWay('resetting');
    client.socket.write('next');
    assert.equal(await client.ended, 'ECONNRESET', 'a reset, not a FIN: the client knows the answer is cut');
    const closed = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.closed' && entry['service'] === 'resetting',
      'the stream audited',
    );
    assert.equal(closed['reason'], 'AGENT_ERR_TUNNEL_TARGET_FAILED');
  });

  it("an IT client's reset mid-transfer resets the target's connection, not a FIN", async () => {
    const client = await connectClient(plant.address('echo'));
    const chunk = randomBytes(64 * 1024);
    client.socket.write(chunk);
    await waitFor(() => client.bytes() >= chunk.byteLength, 'the echo under way');
    client.socket.resetAndDestroy();
    await waitFor(() => echoEnds.length === 1, 'the target connection ended');
    assert.deepEqual(echoEnds, ['ECONNRESET']);
    const closed = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.closed' && entry['service'] === 'echo',
      'the stream audited',
    );
    assert.equal(closed['reason'], 'AGENT_ERR_TUNNEL_CLIENT_FAILED');
  });

  it('a reload that drops one grant resets its transfer at both ends; the other completes', async (t) => {
    const dropped = await underWay('download');
    const keptConnecting = Date.now();
    const kept = await underWay('kept');
    const keptUnderWay = Date.now();
    const reloadedAt = Date.now();
    const { config } = plant.relay;
    plant.relay.relay.applyConfig(
      testConfig(plant.pki, config.state, {
        policy: [{ role: 'ot' }, { agent: IT_NAME, tunnel: [`${OT_NAME}/kept`, `${OT_NAME}/resetting`] }],
      }),
    );
    await resetWithin(t, dropped, reloadedAt);
    await waitFor(() => plant.exit.stats().open === 1, 'the exit closed the dropped stream', CLOSE_BOUND_MS);
    assert.equal(await kept.ended, 'end');
    assert.ok(Buffer.concat(kept.received).equals(payload), 'the kept transfer byte for byte');
    const keptEnding = Date.now();
    kept.socket.end();
    const closed = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.closed' && entry['service'] === 'download',
      'the dropped stream audited',
    );
    assert.equal(closed['reason'], 'RELAY_ERR_POLICY_CHANGED');
    const cut = closed['bytesToIt'] as number;
    assert.ok(cut >= dropped.bytes() && cut < TRANSFER_BYTES, `the dropped stream audited with ${cut} bytes`);
    // The audit's bytes are what crossed: the whole transfer for the kept stream, nothing to OT.
    const done = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.closed' && entry['service'] === 'kept',
      'the kept stream audited',
    );
    assert.deepEqual([done['reason'], done['bytesToIt'], done['bytesToOt']], ['end', TRANSFER_BYTES, 0]);
    // Its duration: open before it was under way, closed after its end; within what we watched.
    const duration = done['durationMs'] as number;
    assert.ok(
      duration >= keptEnding - keptUnderWay && duration <= Date.now() - keptConnecting,
      `${duration} ms`,
    );
  });

  it('revoking the OT agent mid-transfer resets the client; the entrance refuses at once and stays', async (t) => {
    const client = await underWay('kept');
    const revokedAt = Date.now();
    const { pki } = plant;
    plant.relay.relay.reloadTls(
      {
        caPem: pki.ca.certPem,
        certPem: pki.relay.certPem,
        keyPem: pki.relay.keyPem,
        crlPem: pki.revoke(plant.otSerial),
      },
      new Set([plant.otSerial]),
    );
    await resetWithin(t, client, revokedAt);
    await waitFor(() => plant.exit.stats().open === 0, 'the exit closed its stream', CLOSE_BOUND_MS);
    const closed = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.closed' && entry['reason'] === 'RELAY_ERR_REVOKED',
      'the stream audited',
    );
    assert.equal(closed['service'], 'kept');
    // The IT agent and its entrances are untouched: the next client is reset at once (no OT agent).
    const offline = await connectClient(plant.address('kept'));
    assert.equal(await offline.ended, 'ECONNRESET');
    assert.equal(plant.it.closed, false, "the IT agent's link survived the OT agent's revocation");
  });
});
