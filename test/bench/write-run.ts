/**
 * `npm run bench:writes` (issue 7): the round trip of a write from IT to a Modbus device and back:
 * the IT write client signs a command, the relay routes it in a session, the OT agent checks it
 * (signature, deadline, nonce fsync'd, type, range), writes the holding register (function 6),
 * audits it (fsync'd) and answers, the relay carries the answer back. Everything in one process on
 * loopback: the real relay with mTLS, the real OT agent runtime, modbus-serial's ServerTCP.
 *
 * In the same run, on the same device, the rows that take the path apart:
 *   - the device alone: modbus-serial's client writing the same register (function 6), no agent;
 *   - the disk alone: three appends with fdatasync each, in the OT agent's state directory (a done
 *     write waits for three: its nonce and its `executing` audit line before the device write,
 *     its outcome's audit line after);
 *   - a refused command (a read-only point): relay and checks, no fsync, no device;
 *   - a done write to a point that needs no signature; then one that needs it (the full path).
 * Writes are sequential (one in flight), as an operator's or an HMI's are. N per row from
 * WRITE_BENCH_WRITES (default 500), after 20 untimed ones.
 */
import { open } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import ModbusModule from 'modbus-serial';
import type { WriteResult } from '../../agents/it/write-client.ts';
import { createWritePlant, OT, topic, ADDRESS } from '../agents/ot/writes/write-fixture.ts';
import { waitFor } from '../support/wait.ts';
import { monotonicMs } from './clock.ts';
import { summarizeLatency, type LatencyResult } from './stats.ts';
import { formatTable } from './table.ts';

const WRITES = Number(process.env['WRITE_BENCH_WRITES'] ?? 500);
const WARM_UP = 20;

async function timed(count: number, once: (index: number) => Promise<void>): Promise<LatencyResult> {
  for (let index = 0; index < WARM_UP; index++) await once(index);
  const samples: number[] = [];
  for (let index = 0; index < count; index++) {
    const start = monotonicMs();
    await once(index);
    samples.push(monotonicMs() - start);
  }
  return summarizeLatency(samples);
}

function expect(result: WriteResult, status: WriteResult['status'], code?: string): void {
  if (result.status !== status || (code !== undefined && result.code !== code))
    throw new Error(`expected ${status} ${code ?? ''}, got ${JSON.stringify(result)}`);
}

async function main(): Promise<void> {
  const load = loadavg()[0] ?? 0;
  const plant = await createWritePlant();
  const ot = await plant.startOt();
  try {
    await waitFor(() => ot.status().relay.connected, 'OT agent connected', 30_000);
    const hmi = await plant.connectIt('hmi-1', plant.keys.hmi1);
    const client = new ModbusModule.default();
    await client.connectTCP(plant.device.host, { port: plant.device.port });
    client.setTimeout(5000);
    const rows: [string, LatencyResult][] = [];
    rows.push([
      'device alone (modbus-serial, function 6)',
      await timed(WRITES, async (index) => {
        await client.writeRegister(ADDRESS.speed, index % 100);
      }),
    ]);
    client.close(() => undefined);
    // What a done write must wait for on this disk: the nonce and two audit lines, each appended and synced.
    const floor = await open(join(plant.otState, 'bench-fsync.jsonl'), 'a');
    rows.push([
      'three appends + fdatasync (the disk floor)',
      await timed(WRITES, async () => {
        for (let sync = 0; sync < 3; sync++) {
          await floor.write('{"nonce":"aaaaaaaaaaaaaaaaaaaaaa","deadline":1764590400000}\n');
          await floor.datasync();
        }
      }),
    ]);
    await floor.close();
    rows.push([
      'refused: read-only point (relay + checks)',
      await timed(WRITES, async () => {
        expect(
          await hmi.client.write({ agent: OT, topic: topic('speed'), value: 1 }),
          'refused',
          'AGENT_ERR_WRITE_READ_ONLY',
        );
      }),
    ]);
    rows.push([
      'done: unsigned point (nonce + audit fsync, device)',
      await timed(WRITES, async (index) => {
        expect(await hmi.client.write({ agent: OT, topic: topic('flow'), value: index % 100 }), 'done');
      }),
    ]);
    rows.push([
      'done: signed point (EdDSA verify, the full path)',
      await timed(WRITES, async (index) => {
        expect(await hmi.client.write({ agent: OT, topic: topic('setpoint'), value: index % 100 }), 'done');
      }),
    ]);
    const device = rows[0]![1];
    const table = formatTable([
      ['round trip', 'writes', 'p50 ms', 'p99 ms', 'max ms', 'p50 vs device'],
      ...rows.map(([name, result]) => [
        name,
        String(result.samples),
        result.p50Ms.toFixed(2),
        result.p99Ms.toFixed(2),
        result.maxMs.toFixed(2),
        `${(result.p50Ms / device.p50Ms).toFixed(1)}x`,
      ]),
    ]);
    console.log(
      `write round trip, IT -> relay -> OT -> Modbus device -> IT (load average ${load.toFixed(2)} at start, ${(loadavg()[0] ?? 0).toFixed(2)} at end)`,
    );
    for (const line of table) console.log(line);
  } finally {
    await ot.stop();
    await plant.close();
  }
}

await main();
