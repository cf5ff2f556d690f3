/**
 * Tunnels in the agent runtime, configured as agent.yaml configures them: an IT agent whose
 * entrance reaches a Modbus device through an OT agent's service, and the relay going away in the
 * middle of a transfer. The entrance keeps listening; the stream that was open is reset promptly
 * at both ends (never half-alive); once the relay is back, a new stream works with nothing else
 * done (the agents reconnect on their own).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import ModbusModule from 'modbus-serial';
import type { Agent } from '../../../agents/runtime/agent.ts';
import { createAgentPlant, startAgent, type AgentPlant } from '../../support/agent-plant.ts';
import { ModbusTestDevice } from '../../support/modbus-device.ts';
import { freePort } from '../../support/ports.ts';
import { waitFor } from '../../support/wait.ts';
import { connectClient, echo, startTarget } from './tunnel-fixture.ts';

/** Reconnects take a few hundred ms (agent-plant's backoff); a loaded machine may take more. */
const BACK_BOUND_MS = 30_000;

async function readRegisters(port: number, address: number, count: number): Promise<number[]> {
  const client = new ModbusModule.default();
  client.setTimeout(2_000);
  await client.connectTCP('127.0.0.1', { port });
  try {
    return (await client.readHoldingRegisters(address, count)).data;
  } finally {
    await new Promise<void>((resolve) => client.close(() => resolve()));
  }
}

describe('tunnel - in the agent runtime, across a relay restart', () => {
  let plant: AgentPlant;
  let device: ModbusTestDevice;
  let echoTarget: Awaited<ReturnType<typeof startTarget>>;
  let otAgent: Agent;
  let itAgent: Agent;
  let modbusPort: number;
  let echoPort: number;

  before(async () => {
    plant = await createAgentPlant({ policy: [{ role: 'ot' }, { role: 'it', tunnel: ['plc-gw/+'] }] });
    device = await ModbusTestDevice.start();
    echoTarget = await startTarget(echo);
    modbusPort = await freePort();
    echoPort = await freePort();
    otAgent = await startAgent(
      plant.config({
        credentials: await plant.enroll('ot', 'plc-gw'),
        state: `${plant.dir}/ot-state`,
        ot: {
          sources: [{ type: 'simulator', name: 'line1', points: [{ name: 'temp', signal: 'sine' }] }],
          services: [
            { name: 'modbus', target: `${device.host}:${device.port}` },
            { name: 'echo', target: `127.0.0.1:${echoTarget.address.port}` },
          ],
        },
      }),
    );
    itAgent = await startAgent(
      plant.config({
        credentials: await plant.enroll('it', 'scada'),
        state: `${plant.dir}/it-state`,
        it: {
          tunnels: [
            { listen: modbusPort, to: 'plc-gw/modbus' },
            { listen: `127.0.0.1:${echoPort}`, to: 'plc-gw/echo' },
          ],
        },
      }),
    );
  });
  after(async () => {
    await itAgent.stop();
    await otAgent.stop();
    await plant.close();
    await device.down();
    await echoTarget.close();
  });

  it('reads holding registers through the entrance as soon as both agents are connected', async () => {
    device.setHolding(0, [1234, 5678]);
    const read = await waitFor(
      () => readRegisters(modbusPort, 0, 2).catch(() => undefined),
      'a Modbus read through the tunnel',
      BACK_BOUND_MS,
      100,
    );
    assert.deepEqual(read, [1234, 5678]);
    assert.equal(itAgent.status().tunnels?.open, 0);
    assert.ok((otAgent.status().tunnels?.bytesSent ?? 0) > 0, 'the exit counted the answer');
  });

  it('resets the open stream when the relay goes, keeps listening, and works again once it is back', async () => {
    const client = await connectClient({ host: '127.0.0.1', port: echoPort });
    const chunk = Buffer.alloc(64 * 1024, 7);
    let writing = true;
    const writer = (async () => {
      while (writing && !client.socket.destroyed) {
        if (!client.socket.write(chunk)) {
          await new Promise((resolve) => {
            client.socket.once('drain', resolve);
            client.socket.once('close', resolve);
          });
        }
      }
    })();
    await waitFor(() => client.bytes() > 1024 * 1024, 'the transfer under way');
    await plant.stopRelay();
    assert.equal(await client.ended, 'ECONNRESET', 'the IT client is reset, not left hanging');
    writing = false;
    await writer.catch(() => undefined);
    await waitFor(
      () => otAgent.status().tunnels?.open === 0 && echoTarget.sockets.size === 0,
      'the OT end closed too',
    );
    // Still listening while the relay is away: a client is taken, and reset at once.
    const offline = await connectClient({ host: '127.0.0.1', port: modbusPort });
    assert.equal(await offline.ended, 'ECONNRESET');
    await plant.startRelay();
    device.setHolding(10, [42]);
    const read = await waitFor(
      () => readRegisters(modbusPort, 10, 1).catch(() => undefined),
      'a Modbus read after the relay is back',
      BACK_BOUND_MS,
      100,
    );
    assert.deepEqual(read, [42]);
  });
});
