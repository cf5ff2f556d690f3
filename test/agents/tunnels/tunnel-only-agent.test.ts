/**
 * An OT host that only carries tunnels: `ot.services` and no sources, as README's tunnel section
 * configures it. The agent starts, connects, carries a stream end to end, and says so in its
 * status, with no point source to read and nothing to publish.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Agent } from '../../../agents/runtime/agent.ts';
import { createAgentPlant, readAgentStatus, startAgent, type AgentPlant } from '../../support/agent-plant.ts';
import { freePort } from '../../support/ports.ts';
import { waitFor } from '../../support/wait.ts';
import { connectClient, echo, startTarget } from './tunnel-fixture.ts';

/** Both agents connect within a few hundred ms; a loaded machine may take more. */
const CONNECTED_BOUND_MS = 30_000;

describe('tunnel - an OT agent with services and no sources', () => {
  let plant: AgentPlant;
  let echoTarget: Awaited<ReturnType<typeof startTarget>>;
  let otAgent: Agent;
  let itAgent: Agent;
  let entrancePort: number;

  before(async () => {
    plant = await createAgentPlant({ policy: [{ role: 'ot' }, { agent: 'scada', tunnel: ['plc-gw/echo'] }] });
    echoTarget = await startTarget(echo);
    entrancePort = await freePort();
    otAgent = await startAgent(
      plant.config({
        credentials: await plant.enroll('ot', 'plc-gw'),
        state: `${plant.dir}/ot-state`,
        ot: { services: [{ name: 'echo', target: `127.0.0.1:${echoTarget.address.port}` }] },
      }),
    );
    itAgent = await startAgent(
      plant.config({
        credentials: await plant.enroll('it', 'scada'),
        state: `${plant.dir}/it-state`,
        it: { tunnels: [{ listen: entrancePort, to: 'plc-gw/echo' }] },
      }),
    );
  });
  after(async () => {
    await itAgent?.stop();
    await otAgent?.stop();
    await plant?.close();
    await echoTarget?.close();
  });

  it('carries a stream through the entrance to the service and back', async () => {
    await waitFor(
      () => otAgent.status().relay.connected && itAgent.status().relay.connected,
      'both agents connected',
      CONNECTED_BOUND_MS,
    );
    const sent = 'holding registers, please';
    const text = await waitFor(
      async () => {
        const client = await connectClient({ host: '127.0.0.1', port: entrancePort });
        client.socket.end(sent);
        const ended = await client.ended;
        return ended === 'end' || ended === 'close' ? client.text() : undefined;
      },
      'an echo through the tunnel',
      CONNECTED_BOUND_MS,
      100,
    );
    assert.equal(text, sent);
    assert.ok((otAgent.status().tunnels?.bytesSent ?? 0) >= sent.length, 'the exit counted the echo');
  });

  it('reports a status with no sources and an empty log', async () => {
    const status = await waitFor(async () => {
      const written = await readAgentStatus(`${plant.dir}/ot-state`);
      return written?.relay.connected === true ? written : undefined;
    }, 'a status written while connected');
    assert.deepEqual(status.ot?.sources, []);
    assert.equal(status.ot?.pointsLogged, 0);
    assert.equal(status.ot?.streamCount, 0);
  });
});
