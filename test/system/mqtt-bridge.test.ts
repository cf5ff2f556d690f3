/**
 * The MQTT bridge with real processes and a broker of another make than the tests' aedes: the
 * relay, an OT agent streaming simulated points, an IT agent whose sink is the bridge, Debian's
 * mosquitto as the broker, and `mosquitto_sub` with a persistent session counting every point, as
 * a historian would. In the middle of the stream mosquitto is restarted (SIGTERM, then again on the
 * same port, its persistence keeping the subscriber's session): every point must still arrive.
 * Run by `npm run test:mqtt` (in .ci/run, which installs mosquitto), not by `npm test`; skipped,
 * saying why, where mosquitto is not installed.
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createProcessPlant,
  IT_AGENT,
  OT_AGENT,
  READY_LINES,
  type ProcessPlant,
} from '../support/process-plant.ts';
import { freePort, tcpConnectOutcome } from '../support/ports.ts';
import { findTool } from '../support/system-tools.ts';
import { waitFor } from '../support/wait.ts';
import { spawnChild } from '../support/child-processes.ts';

const MOSQUITTO = findTool('mosquitto');
const MOSQUITTO_SUB = findTool('mosquitto_sub');
const missing =
  MOSQUITTO === undefined || MOSQUITTO_SUB === undefined
    ? 'mosquitto is not installed (apt-get install mosquitto mosquitto-clients)'
    : undefined;
if (missing !== undefined) console.log(`# skipping the mosquitto system test: ${missing}`);

const POINTS = ['temp', 'count'];
/** One reading per 10 ms per point: 20 s of stream, so the broker restart falls in the middle. */
const READINGS_PER_POINT = 2_000;
const BROKER_TOPICS = POINTS.map((point) => `plant/${OT_AGENT}/${point}`);
/** Processes under tsx start in seconds; a loaded 2-core machine takes longer. */
const START_BOUND_MS = 60_000;
const ALL_POINTS_BOUND_MS = 120_000;
const BROKER_STOP_BOUND_MS = 10_000;

/** mosquitto on a fixed loopback port, with persistence so that sessions survive a restart. */
class Mosquitto {
  readonly port: number;
  readonly #dir: string;
  #child: ChildProcess | undefined;
  #runs = 0;

  constructor(port: number, dir: string) {
    this.port = port;
    this.#dir = dir;
  }

  async start(): Promise<void> {
    this.#runs++;
    const config = join(this.#dir, 'mosquitto.conf');
    await writeFile(
      config,
      [
        `listener ${this.port} 127.0.0.1`,
        'allow_anonymous true',
        'persistence true',
        `persistence_location ${this.#dir}/`,
        // A subscriber away during the restart must get everything queued for it (default 1000).
        'max_queued_messages 0',
        // Started as root, mosquitto 2 drops to the `mosquitto` user, which cannot write our directory.
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        'log_dest stderr',
        'log_timestamp false',
        '',
      ].join('\n'),
    );
    const log = join(this.#dir, `mosquitto.${this.#runs}.log`);
    const child = spawnChild(MOSQUITTO as string, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    const lines: string[] = [];
    child.stderr?.on('data', (chunk: Buffer) => lines.push(chunk.toString('utf8')));
    child.once('exit', () => void writeFile(log, lines.join('')).catch(() => undefined));
    this.#child = child;
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`mosquitto exited: ${lines.join('')}`);
        return (await tcpConnectOutcome('127.0.0.1', this.port)) === 'connected';
      },
      'mosquitto listening',
      START_BOUND_MS,
      50,
    );
  }

  /** SIGTERM: mosquitto writes its persistence file and exits. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const bound = setTimeout(() => child.kill('SIGKILL'), BROKER_STOP_BOUND_MS);
    await exited;
    clearTimeout(bound);
  }
}

/** `mosquitto_sub -v`: every message as `topic payload`, one per line. */
class SubscriberProcess {
  readonly lines: string[] = [];
  readonly #child: ChildProcess;
  #partial = '';

  constructor(args: readonly string[]) {
    this.#child = spawnChild(MOSQUITTO_SUB as string, ['-v', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child.stdout?.on('data', (chunk: Buffer) => {
      const text = this.#partial + chunk.toString('utf8');
      const complete = text.split('\n');
      this.#partial = complete.pop() ?? '';
      this.lines.push(...complete);
    });
  }

  /** Payloads on `topic`, parsed as JSON. */
  payloads(topic: string): Record<string, unknown>[] {
    const prefix = `${topic} `;
    return this.lines
      .filter((line) => line.startsWith(prefix))
      .map((line) => JSON.parse(line.slice(prefix.length)) as Record<string, unknown>);
  }

  get exited(): Promise<unknown> {
    return this.#child.exitCode === null ? once(this.#child, 'exit') : Promise.resolve();
  }

  stop(): void {
    this.#child.kill('SIGTERM');
  }
}

describe('system - the MQTT bridge to mosquitto', { skip: missing }, () => {
  let plant: ProcessPlant | undefined;
  let broker: Mosquitto | undefined;
  let subscriber: SubscriberProcess | undefined;
  let passed = false;

  before(async () => {
    const port = await freePort();
    plant = await createProcessPlant({
      sources: [
        {
          type: 'simulator',
          name: 'line1',
          interval: '10ms',
          batch: 10,
          limit: READINGS_PER_POINT,
          points: [
            { name: 'temp', signal: 'sine', period: '5s', min: 20, max: 80 },
            { name: 'count', signal: 'ramp', min: 0, max: 1_000_000, step: 1 },
          ],
        },
      ],
      sink: {
        name: 'plant-broker',
        type: 'mqtt',
        broker: { url: `mqtt://127.0.0.1:${port}`, keepalive: '5s' },
        topics: [{ from: `${OT_AGENT}/line1`, to: `plant/${OT_AGENT}` }],
      },
    });
    const brokerDir = join(plant.dir, 'mosquitto');
    await mkdir(brokerDir);
    broker = new Mosquitto(port, brokerDir);
  });

  after(async () => {
    subscriber?.stop();
    for (const child of [plant?.it, plant?.ot, plant?.relay]) child?.killNow();
    await broker?.stop();
    if (plant === undefined) return;
    if (passed) await rm(plant.dir, { recursive: true, force: true });
    else console.log(`# kept ${plant.dir} (process and broker logs)`);
  });

  it('every point reaches a subscriber of mosquitto, across a restart of mosquitto mid-stream', async (t) => {
    const running = plant!; // before() made them
    const mosquitto = broker!;
    await mosquitto.start();
    // A persistent session (-c, a fixed id, QoS 1): mosquitto keeps what arrives while it is away.
    const sub = new SubscriberProcess([
      ...['-h', '127.0.0.1', '-p', String(mosquitto.port)],
      ...['-i', 'historian-reader', '-c', '-q', '1', '-t', 'plant/#'],
    ]);
    subscriber = sub;
    for (const child of [running.relay, running.ot, running.it]) child.start();
    const seqs = (topic: string) => sub.payloads(topic).map((payload) => payload.seq as number);
    await waitFor(
      () => seqs(BROKER_TOPICS[0] as string).length >= 300,
      'the first points at the subscriber',
      START_BOUND_MS,
      100,
    );
    assert.ok(running.it.stderrIncludes(READY_LINES.agent), 'the IT agent has its link');

    await mosquitto.stop();
    const duringOutage = seqs(BROKER_TOPICS[0] as string).length;
    await mosquitto.start();
    t.diagnostic(`mosquitto restarted after ${duringOutage} points of ${BROKER_TOPICS[0]}`);

    const complete = () => BROKER_TOPICS.every((topic) => new Set(seqs(topic)).size >= READINGS_PER_POINT);
    await waitFor(complete, 'every point of every topic at the subscriber', ALL_POINTS_BOUND_MS, 250).catch(
      (error: unknown) => {
        const counts = BROKER_TOPICS.map((topic) => `${topic}: ${new Set(seqs(topic)).size}`).join(', ');
        throw new Error(`${(error as Error).message} (${counts})\nIT agent:\n${running.it.stderrTail(20)}`);
      },
    );
    const expected = Array.from({ length: READINGS_PER_POINT }, (_, index) => index + 1);
    for (const topic of BROKER_TOPICS) {
      const received = seqs(topic);
      assert.deepEqual(
        [...new Set(received)].sort((a, b) => a - b),
        expected,
        `every seq of ${topic}, none lost`,
      );
      t.diagnostic(`${topic}: ${received.length} messages for ${READINGS_PER_POINT} points`);
      const payload = sub.payloads(topic)[0];
      assert.deepEqual(Object.keys(payload ?? {}).sort(), ['quality', 'seq', 'timestamp', 'value']);
    }

    // The last value of each topic and the agents' states are retained for whoever comes later.
    const late = new SubscriberProcess([
      ...['-h', '127.0.0.1', '-p', String(mosquitto.port)],
      ...['-t', 'plant/#', '-t', 'dmz/status/#', '-C', '4', '-W', '30', '--retained-only'],
    ]);
    await late.exited;
    assert.deepEqual(late.lines.filter((line) => line.startsWith('dmz/')).sort(), [
      `dmz/status/${IT_AGENT} online`,
      `dmz/status/${OT_AGENT} online`,
    ]);
    for (const topic of BROKER_TOPICS)
      assert.deepEqual(
        late.payloads(topic).map((payload) => payload.seq),
        [READINGS_PER_POINT],
      );

    // What the IT agent says of its bridge: connected, twice (once per mosquitto run).
    const status = JSON.parse(await readFile(join(running.dir, 'it-state', 'status.json'), 'utf8')) as {
      it: { sinks: { name: string; connected: boolean; connections: number }[] };
    };
    const bridge = status.it.sinks.find((sink) => sink.name === 'plant-broker');
    assert.equal(bridge?.connected, true);
    assert.ok((bridge?.connections ?? 0) >= 2, `connections: ${bridge?.connections}`);

    // A clean stop of the IT agent says offline, itself.
    await running.it.stop();
    const after = new SubscriberProcess([
      ...['-h', '127.0.0.1', '-p', String(mosquitto.port)],
      ...['-t', 'dmz/status/#', '-C', '2', '-W', '30', '--retained-only'],
    ]);
    await after.exited;
    assert.deepEqual(after.lines.sort(), [
      `dmz/status/${IT_AGENT} offline`,
      `dmz/status/${OT_AGENT} offline`,
    ]);
    passed = true;
  });
});
