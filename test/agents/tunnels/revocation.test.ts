/**
 * What policy takes away, tunnels lose at once: a policy reload that drops a tunnel grant aborts
 * the streams it covered on both ends (and keeps the others), and revoking the IT agent's
 * certificate cuts its link and every stream with it. Each ends with its reason in the audit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testConfig } from '../../support/relay-harness.ts';
import { waitFor } from '../../support/wait.ts';
import {
  connectClient,
  echo,
  IT_NAME,
  service,
  startTarget,
  startTunnelPlant,
  type TunnelPlant,
} from './tunnel-fixture.ts';

/** Generous for a loaded machine; the relay acts on the reload or revocation itself at once. */
const CLOSE_BOUND_MS = 5_000;

describe('tunnel - policy change and revocation', () => {
  let plant: TunnelPlant;
  let target: Awaited<ReturnType<typeof startTarget>>;

  before(async () => {
    target = await startTarget(echo);
    plant = await startTunnelPlant({
      services: [service('echo', target.address), service('kept', target.address)],
      entrances: ['echo', 'kept'],
    });
  });
  after(async () => {
    await plant.close();
    await target.close();
  });

  async function openEcho(name: string) {
    const client = await connectClient(plant.address(name));
    client.socket.write('ping');
    await waitFor(() => client.text() === 'ping', `the ${name} stream echoing`);
    return client;
  }

  it('a reload without the grant aborts its streams on both ends, and keeps the rest', async () => {
    const dropped = await openEcho('echo');
    const kept = await openEcho('kept');
    const targetsBefore = target.sockets.size;
    const { config } = plant.relay;
    plant.relay.relay.applyConfig(
      testConfig(plant.pki, config.state, {
        policy: [{ role: 'ot' }, { agent: IT_NAME, tunnel: ['plc-gw/kept'] }],
      }),
    );
    assert.equal(await dropped.ended, 'ECONNRESET');
    const closed = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.closed' && entry['service'] === 'echo',
      'the dropped stream audited',
    );
    assert.equal(closed['reason'], 'RELAY_ERR_POLICY_CHANGED');
    await waitFor(
      () => target.sockets.size === targetsBefore - 1,
      'the target side closed too',
      CLOSE_BOUND_MS,
    );
    kept.socket.write('-still');
    await waitFor(() => kept.text() === 'ping-still', 'the kept stream still echoing');
    kept.socket.destroy();
  });

  it("revoking the IT agent's certificate ends its streams with its link", async () => {
    const client = await openEcho('kept');
    const targetsBefore = target.sockets.size;
    const { pki } = plant;
    plant.relay.relay.reloadTls(
      {
        caPem: pki.ca.certPem,
        certPem: pki.relay.certPem,
        keyPem: pki.relay.keyPem,
        crlPem: pki.revoke(plant.itSerial),
      },
      new Set([plant.itSerial]),
    );
    assert.equal(await client.ended, 'ECONNRESET');
    const closed = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.closed' && entry['service'] === 'kept' && entry['reason'] !== 'end',
      'the stream audited',
    );
    assert.equal(closed['reason'], 'RELAY_ERR_REVOKED');
    await waitFor(
      () => target.sockets.size === targetsBefore - 1,
      'the target side closed too',
      CLOSE_BOUND_MS,
    );
    assert.equal(plant.exit.stats().open, 0);
  });
});
