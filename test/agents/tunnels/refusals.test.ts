/**
 * Every way a stream can be refused ends the IT client's connection promptly (a reset, never a
 * hang) and leaves an audit entry at the relay naming why: not granted by policy, no such service
 * on the OT side, not on the service's allowlist, the target refusing, the target not answering.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { waitFor } from '../../support/wait.ts';
import { startFailingTargets, type FailingTargets } from './failing-targets.ts';
import {
  connectClient,
  echo,
  IT_NAME,
  OT_NAME,
  service,
  startTarget,
  startTunnelPlant,
  type TunnelPlant,
} from './tunnel-fixture.ts';

describe('tunnel refusals - a prompt reset and an audit entry each', () => {
  let pki: TestPki;
  let plant: TunnelPlant;
  let target: Awaited<ReturnType<typeof startTarget>>;
  let failing: FailingTargets;

  before(async () => {
    pki = await createTestPki();
    target = await startTarget(echo);
    failing = await startFailingTargets();
    plant = await startTunnelPlant({
      pki,
      services: [
        service('echo', target.address),
        service('secret', target.address),
        service('others-only', target.address, { allow: ['historian'] }),
        service('down', { host: '127.0.0.1', port: failing.refusingPort }),
        service('hanging', { host: '127.0.0.1', port: failing.hangingPort }, { connectTimeoutMs: 300 }),
      ],
      entrances: ['echo', 'secret', 'missing', 'others-only', 'down', 'hanging'],
      relay: {
        // Everything of the OT agent but `secret`: the relay refuses that one itself.
        policy: [
          { role: 'ot' },
          {
            agent: IT_NAME,
            tunnel: ['plc-gw/echo', 'plc-gw/missing', 'plc-gw/others-only', 'plc-gw/down', 'plc-gw/hanging'],
          },
        ],
      },
    });
  });
  after(async () => {
    failing.close();
    await plant.close();
    await target.close();
  });

  const cases = [
    { entrance: 'secret', reason: 'RELAY_ERR_FORBIDDEN', what: 'a service policy does not grant' },
    {
      entrance: 'missing',
      reason: 'AGENT_ERR_TUNNEL_NO_SERVICE',
      what: 'a service the OT agent does not have',
    },
    {
      entrance: 'others-only',
      reason: 'AGENT_ERR_TUNNEL_FORBIDDEN',
      what: 'a service whose allowlist does not name the IT agent',
    },
    {
      entrance: 'down',
      reason: 'AGENT_ERR_TUNNEL_TARGET_REFUSED',
      what: 'a target that refuses the connection',
    },
    {
      entrance: 'hanging',
      reason: 'AGENT_ERR_TUNNEL_TARGET_TIMEOUT',
      what: 'a target that never answers the connect',
    },
  ];
  for (const { entrance, reason, what } of cases) {
    it(`${what}: the client is reset, the relay audits ${reason}`, async () => {
      const client = await connectClient(plant.address(entrance));
      client.socket.write('hello?');
      assert.equal(await client.ended, 'ECONNRESET');
      assert.equal(client.bytes(), 0);
      const refused = await plant.relay.audit.waitFor(
        (entry) => entry.event === 'tunnel.refused' && entry['service'] === entrance,
        `the refusal of ${entrance}`,
      );
      assert.equal(refused['reason'], reason);
      assert.equal(refused['it'], IT_NAME);
      assert.equal(refused['ot'], OT_NAME);
      assert.ok(
        !plant.relay.audit.entries.some(
          (entry) => entry.event === 'tunnel.opened' && entry['service'] === entrance,
        ),
      );
      await waitFor(
        () => plant.entrance.stats().open === 0 && plant.exit.stats().open === 0,
        'no stream left open',
      );
    });
  }

  it('refuses nothing else: a granted service to a live target still works after the refusals', async () => {
    const client = await connectClient(plant.address('echo'));
    client.socket.end('still here');
    assert.equal(await client.ended, 'end');
    assert.equal(client.text(), 'still here');
  });
});
