/**
 * `npm run bench:modbus` (issue 7): the poll cycle of the Modbus source reading 10,000 holding
 * registers from a real Modbus TCP server, against Debian's `mbpoll` reading the same registers
 * from the same server in the same run. The server is Debian's python3-pymodbus in its own process
 * when it is installed (as for the system test), else modbus-serial's ServerTCP in this process;
 * the report says which.
 *
 * The agent: one device, 10,000 uint16 points at addresses 0-9999, coalesced into 80 requests of
 * at most 125 registers, sent one after another on one connection; a cycle is timed from its start
 * to its readings handed to the output (a no-op here: the log has its own benchmark). mbpoll reads
 * at most 125 registers per invocation and one range each, so a sweep is 80 invocations in one
 * shell, one after another, each its own process and TCP connection: the way a script polls with it.
 * The two alternate in rounds, never overlapping, so each has the server and both cores to itself.
 * Target: the agent's cycle at most 1.5x mbpoll's sweep. The machine's load average is printed
 * with the results: on a shared 2-core machine the other work shows in the spread.
 */
import { spawn, spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import type { PointReading } from '../../agents/points/point.ts';
import type { ModbusConfig } from '../../agents/ot/sources/modbus/config.ts';
import { MAX_REGISTERS_PER_REQUEST } from '../../agents/ot/sources/modbus/config.ts';
import { ModbusSource } from '../../agents/ot/sources/modbus/modbus-source.ts';
import { validateSourceConfig } from '../../agents/ot/sources/registry.ts';
import { ModbusTestDevice } from '../support/modbus-device.ts';
import { pymodbusMissing, PymodbusDevice } from '../support/pymodbus-device.ts';
import { waitFor } from '../support/wait.ts';
import { monotonicMs } from './clock.ts';
import { summarizeLatency } from './stats.ts';
import { formatRatio, formatTable } from './table.ts';

const REGISTERS = 10_000;
const ROUNDS = 3;
/** Timed cycles (and sweeps) per round, after one untimed warm-up each. */
const SAMPLES_PER_ROUND = 8;
/**
 * mbpoll 1.4.11 sleeps 20 ms after every connect, before its request (strace shows a
 * clock_nanosleep of 20 ms between connect() and sendto()): a sweep of 80 invocations carries 1.6 s
 * of it. The report also compares with the sweep less those pauses, the stricter baseline.
 */
const MBPOLL_CONNECT_PAUSE_MS = 20;
const TARGET_RATIO = 1.5;
/** Far longer than a cycle, so cycles never run back to back and sampling sees each one. */
const POLL_INTERVAL = '500ms';

interface Server {
  readonly kind: string;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** A register's content: its address, scrambled a little, so a misread shows. */
function registerValue(address: number): number {
  return (address * 7 + 3) & 0xffff;
}

async function startServer(): Promise<Server> {
  const registers = Array.from({ length: REGISTERS }, (_, address) => registerValue(address));
  const forced = process.env['MODBUS_BENCH_SERVER'];
  if (forced !== 'servertcp' && pymodbusMissing() === undefined) {
    const device = await PymodbusDevice.start({ holding: { '0': registers } }, { quiet: true });
    return {
      kind: 'python3-pymodbus 3.0 (Debian), its own process',
      host: device.host,
      port: device.port,
      close: () => device.close(),
    };
  }
  const device = await ModbusTestDevice.start();
  device.setHolding(0, registers);
  return {
    kind: `modbus-serial ServerTCP, in the benchmark process (${forced === 'servertcp' ? 'MODBUS_BENCH_SERVER=servertcp' : 'python3-pymodbus is not installed'})`,
    host: device.host,
    port: device.port,
    close: () => device.down(),
  };
}

/** The ranges a sweep reads: 0-124, 125-249, ... */
function ranges(): { start: number; count: number }[] {
  return Array.from({ length: Math.ceil(REGISTERS / MAX_REGISTERS_PER_REQUEST) }, (_, index) => ({
    start: index * MAX_REGISTERS_PER_REQUEST,
    count: Math.min(MAX_REGISTERS_PER_REQUEST, REGISTERS - index * MAX_REGISTERS_PER_REQUEST),
  }));
}

/** One mbpoll sweep over every range, as one shell script; its wall time in ms, and its output. */
async function mbpollSweep(server: Server, keepOutput: boolean): Promise<{ ms: number; output: string }> {
  const commands = ranges().map(
    ({ start, count }) =>
      `mbpoll -m tcp -a 1 -0 -t 4 -r ${start} -c ${count} -1 -o 2 -p ${server.port} ${server.host}`,
  );
  const script = commands.join(' && ') + (keepOutput ? '' : ' > /dev/null');
  const started = monotonicMs();
  const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    if (keepOutput) output += text;
  });
  let errors = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (errors += text));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const ms = monotonicMs() - started;
  if (code !== 0) throw new Error(`mbpoll failed (${code}): ${errors.slice(-500)}`);
  return { ms, output };
}

/** mbpoll's lines `[address]: value` (with -0, the protocol address), for the check. */
function checkMbpollOutput(output: string): void {
  const values = new Map<number, number>();
  for (const match of output.matchAll(/^\[(\d+)\]:\s+(-?\d+)/gm)) {
    values.set(Number(match[1]), Number(match[2]) & 0xffff);
  }
  if (values.size !== REGISTERS) throw new Error(`mbpoll read ${values.size} registers, not ${REGISTERS}`);
  for (const [address, value] of values) {
    if (value !== registerValue(address))
      throw new Error(`mbpoll read ${value} at ${address}, not ${registerValue(address)}`);
  }
}

/** The agent's source polling the server; the timed cycles of one round. */
async function agentCycles(
  server: Server,
  samples: number,
): Promise<{ cyclesMs: number[]; requestsPerCycle: number }> {
  const config = validateSourceConfig({
    type: 'modbus',
    name: 'bench',
    devices: [
      {
        host: server.host,
        port: server.port,
        pollInterval: POLL_INTERVAL,
        timeout: '5s',
        points: Array.from({ length: REGISTERS }, (_, address) => ({
          name: `r${address}`,
          table: 'holding',
          address,
        })),
      },
    ],
  }) as ModbusConfig;
  const latest = new Map<string, PointReading>();
  // The monotonic clock, for sub-millisecond cycle times; the readings go nowhere that encodes them.
  const source = new ModbusSource(config, { agentName: 'bench', now: monotonicMs });
  source.start({
    write: (topic, readings) => {
      const reading = readings.at(-1);
      if (reading !== undefined) latest.set(topic, reading);
      return Promise.resolve();
    },
  });
  const device = () => source.stats().devices[0]!;
  const cyclesMs: number[] = [];
  try {
    // The first cycle connects and sends every point: untimed.
    await waitFor(() => device().cycles >= 1, 'the first cycle', 60_000, 2);
    for (const [address] of Array.from({ length: REGISTERS }).entries()) {
      const reading = latest.get(`bench/bench/r${address}`);
      if (reading?.quality !== 'good' || reading.value !== registerValue(address)) {
        throw new Error(`the agent read ${JSON.stringify(reading)} at ${address}`);
      }
    }
    for (let sample = 0; sample < samples; sample++) {
      const before = device().cycles;
      await waitFor(() => device().cycles > before, 'a cycle', 60_000, 2);
      cyclesMs.push(device().lastCycleMs);
    }
    return { cyclesMs, requestsPerCycle: device().requestsPerCycle };
  } finally {
    await source.stop();
  }
}

interface ReportRow {
  readonly p50Ms: number;
  readonly cells: string[];
}

function reportRow(name: string, samplesMs: readonly number[], requests: number): ReportRow {
  const stats = summarizeLatency(samplesMs);
  const ms = (value: number) => value.toFixed(1);
  const mean = samplesMs.reduce((sum, value) => sum + value, 0) / samplesMs.length;
  return {
    p50Ms: stats.p50Ms,
    cells: [
      name,
      String(stats.samples),
      ms(stats.p50Ms),
      ms(mean),
      ms(Math.min(...samplesMs)),
      ms(stats.maxMs),
      ms(stats.p50Ms / requests),
    ],
  };
}

async function main(): Promise<void> {
  if (spawnSync('mbpoll', ['-V']).error !== undefined) {
    console.error('mbpoll is not installed: apt-get install -y mbpoll');
    process.exitCode = 1;
    return;
  }
  const startLoad = loadavg()[0] ?? 0;
  const server = await startServer();
  try {
    checkMbpollOutput((await mbpollSweep(server, true)).output);
    const agent: number[] = [];
    const mbpoll: number[] = [];
    let requestsPerCycle = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const result = await agentCycles(server, SAMPLES_PER_ROUND);
      agent.push(...result.cyclesMs);
      requestsPerCycle = result.requestsPerCycle;
      await mbpollSweep(server, false);
      for (let sample = 0; sample < SAMPLES_PER_ROUND; sample++)
        mbpoll.push((await mbpollSweep(server, false)).ms);
    }
    const requests = ranges().length;
    const unpaused = mbpoll.map((value) => value - requests * MBPOLL_CONNECT_PAUSE_MS);
    console.log(
      `Modbus source: ${REGISTERS.toLocaleString('en-US')} holding registers, server: ${server.kind}`,
    );
    console.log(
      `agent: ${requestsPerCycle} requests per cycle on one connection; mbpoll: ${requests} invocations per sweep`,
    );
    const rows = [
      reportRow('agent poll cycle', agent, requestsPerCycle),
      reportRow('mbpoll sweep', mbpoll, requests),
      reportRow(`mbpoll sweep less its ${MBPOLL_CONNECT_PAUSE_MS} ms pauses`, unpaused, requests),
    ];
    const header = ['reader', 'samples', 'p50 ms', 'mean ms', 'min ms', 'max ms', 'per request ms (p50)'];
    for (const line of formatTable([header, ...rows.map((row) => row.cells)])) console.log(line);
    const [agentRow, mbpollRow, unpausedRow] = rows as [ReportRow, ReportRow, ReportRow];
    const verdict = (ratio: number) =>
      `${formatRatio(ratio)} (target <= ${TARGET_RATIO}x: ${ratio <= TARGET_RATIO ? 'met' : 'NOT met'})`;
    console.log(`agent / mbpoll (p50): ${verdict(agentRow.p50Ms / mbpollRow.p50Ms)}`);
    console.log(`agent / mbpoll less its pauses (p50): ${verdict(agentRow.p50Ms / unpausedRow.p50Ms)}`);
    console.log(
      `load average (1 min) before / after: ${startLoad.toFixed(2)} / ${(loadavg()[0] ?? 0).toFixed(2)}`,
    );
  } finally {
    await server.close();
  }
}

await main();
