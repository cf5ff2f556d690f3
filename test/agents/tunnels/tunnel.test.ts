/**
 * Tunnels end to end: a real relay, an OT agent's exit and an IT agent's entrance over their real
 * links, real TCP on both sides: Modbus (modbus-serial client and ServerTCP), bulk bytes checked
 * byte for byte, half-close both ways.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import ModbusModule from 'modbus-serial';
import { ModbusTestDevice } from '../../support/modbus-device.ts';
import { waitFor } from '../../support/wait.ts';
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

describe('tunnel - entrance, relay and exit', () => {
  let plant: TunnelPlant;
  let device: ModbusTestDevice;
  let echoTarget: Awaited<ReturnType<typeof startTarget>>;

  before(async () => {
    device = await ModbusTestDevice.start();
    echoTarget = await startTarget(echo);
    plant = await startTunnelPlant({
      services: [
        service('modbus', { host: device.host, port: device.port }),
        service('echo', echoTarget.address),
      ],
      entrances: ['modbus', 'echo'],
    });
  });
  after(async () => {
    await plant.close();
    await device.down();
    await echoTarget.close();
  });

  it('carries Modbus: a modbus-serial client reads and writes the registers of a ServerTCP on the OT side', async () => {
    device.setHolding(100, [11, 22, 33, 44]);
    const client = new ModbusModule.default();
    client.setTimeout(5_000);
    const { host, port } = plant.address('modbus');
    await client.connectTCP(host, { port });
    try {
      const read = await client.readHoldingRegisters(100, 4);
      assert.deepEqual(read.data, [11, 22, 33, 44]);
      await client.writeRegisters(200, [7, 8, 9]);
      assert.deepEqual([...device.holding.subarray(200, 203)], [7, 8, 9]);
      const again = await client.readHoldingRegisters(200, 3);
      assert.deepEqual(again.data, [7, 8, 9]);
    } finally {
      await new Promise<void>((resolve) => client.close(() => resolve()));
    }
    // The device saw the tunnel's exit, not the IT client: its peer is the OT agent's own socket.
    assert.ok(device.requests.some((request) => request.functionCode === 16 && request.address === 200));
    const opened = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.opened' && entry['service'] === 'modbus',
      'the stream opened',
    );
    assert.equal(opened['it'], IT_NAME);
    assert.equal(opened['ot'], OT_NAME);
    const closed = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.closed' && entry['service'] === 'modbus',
      'the stream closed',
    );
    assert.equal(closed['reason'], 'end');
    assert.ok((closed['bytesToOt'] as number) > 0 && (closed['bytesToIt'] as number) > 0);
    assert.equal(typeof closed['durationMs'], 'number');
  });

  it('carries 16 MiB each way byte for byte, within the windows at every end', async () => {
    const payload = randomBytes(16 * 1024 * 1024);
    const client = await connectClient(plant.address('echo'));
    let mostBuffered = 0;
    const sample = setInterval(() => {
      mostBuffered = Math.max(
        mostBuffered,
        plant.entrance.stats().bufferedBytes,
        plant.exit.stats().bufferedBytes,
      );
    }, 5);
    client.socket.end(payload);
    assert.equal(await client.ended, 'end', 'the echo half-closes after the last byte');
    clearInterval(sample);
    assert.equal(client.bytes(), payload.byteLength);
    assert.equal(
      createHash('sha256').update(Buffer.concat(client.received)).digest('hex'),
      createHash('sha256').update(payload).digest('hex'),
    );
    // A window (1 MiB) received and not yet written, plus one socket read, per end at most.
    assert.ok(mostBuffered <= 1024 * 1024 + 64 * 1024, `an end held ${mostBuffered} bytes`);
    await waitFor(() => plant.entrance.stats().open === 0 && plant.exit.stats().open === 0, 'both ends done');
  });

  it('half-closes each way on its own: the target answers after the client has ended its side', async () => {
    const lateTarget = await startTarget((socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      // Only after the client's FIN does it answer, then it ends its own side.
      socket.on('end', () => socket.end(`got ${Buffer.concat(chunks).toString()}`));
    });
    const tunnel = await startTunnelPlant({
      pki: plant.pki,
      services: [service('late', lateTarget.address)],
      entrances: ['late'],
    });
    try {
      const client = await connectClient(tunnel.address('late'));
      client.socket.end('request');
      assert.equal(await client.ended, 'end');
      assert.equal(client.text(), 'got request');
    } finally {
      await tunnel.close();
      await lateTarget.close();
    }
  });
});
