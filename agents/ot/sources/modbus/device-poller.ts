/**
 * One device's poll loop. Cycle k is due at start + k * pollInterval (a drift-free schedule); a
 * cycle that overran skips the cycles it missed (a poll reads the present, there is nothing to
 * catch up) and counts as `behind`. Each cycle:
 *   1. without a connection, connects if the backoff allows (full jitter, agents/link/backoff.ts);
 *   2. sends the planned requests one after another, each with its deadline;
 *   3. turns every point into a reading: good with its value, or bad with the reason (the device
 *      refused the connect, timed out, answered with a Modbus exception, or sent a non-finite
 *      number); a timeout or a lost link also ends the connection and marks the rest of the cycle's
 *      points bad with the same reason;
 *   4. offers each reading to the point's exception report and writes those it keeps, all topics at
 *      once, waiting until they are durable (a refused write is written again) before it goes on.
 * Nothing a device does throws out of the loop: a device down at start is retried by the same steps.
 */
import { reconnectDelayMs } from '../../../link/backoff.ts';
import type { PointReading } from '../../../points/point.ts';
import type { SourceError, SourceOutput, SourceTimers } from '../source.ts';
import { CycleWriter, type TopicReading } from './cycle-writer.ts';
import {
  connectDevice,
  REASONS,
  type DeviceConnection,
  type ReadOutcome,
  type WriteRequest,
  type WriteResult,
} from './device-connection.ts';
import { ExceptionReport } from './exception-report.ts';
import { decodeBit, decodeRegisters } from './register-decoding.ts';
import type { ModbusDevice, ModbusPoint } from './register-map.ts';
import { planRequests, type PlannedRequest } from './request-plan.ts';

/** The longest delay a platform timer takes (2^31 - 1 ms); a longer wait wakes early and waits again. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;
const NOT_FINITE = 'not a finite number';

export interface DeviceStats {
  readonly name: string;
  readonly connected: boolean;
  /** Requests one full cycle sends: the plan's size, fixed at start. */
  readonly requestsPerCycle: number;
  /** Cycles completed (their readings durable). */
  readonly cycles: number;
  /** How long the last completed cycle took, from its start to its readings durable (ms). */
  readonly lastCycleMs: number;
  /** Requests sent and settled (answered, refused or timed out). */
  readonly requests: number;
  readonly exceptions: number;
  readonly timeouts: number;
  readonly connects: number;
  readonly connectFailures: number;
  /** Why the device's points are bad now (the last failure of the last cycle); undefined when none. */
  readonly reason: string | undefined;
}

export interface PollerContext {
  readonly topicOf: (point: ModbusPoint) => string;
  readonly now: () => number;
  readonly timers: SourceTimers;
  /** [0, 1) for the backoff's jitter (default Math.random). */
  readonly random?: () => number;
}

interface PointStream {
  readonly point: ModbusPoint;
  readonly topic: string;
  readonly report: ExceptionReport;
}

interface Counters {
  behind: number;
  lagMs: number;
  cycles: number;
  lastCycleMs: number;
  requests: number;
  exceptions: number;
  timeouts: number;
  connects: number;
  connectFailures: number;
}

export class DevicePoller {
  readonly device: ModbusDevice;
  readonly plan: readonly PlannedRequest[];
  readonly #streams: ReadonlyMap<ModbusPoint, PointStream>;
  readonly #context: PollerContext;
  readonly #stopping = new AbortController();
  readonly #counters: Counters = {
    behind: 0,
    lagMs: 0,
    cycles: 0,
    lastCycleMs: 0,
    requests: 0,
    exceptions: 0,
    timeouts: 0,
    connects: 0,
    connectFailures: 0,
  };
  #writer: CycleWriter | undefined;
  #running = false;
  #startTime = 0;
  #cycleIndex = 0;
  #timer: unknown;
  #cycle: Promise<void> | undefined;
  #connection: DeviceConnection | undefined;
  /** Failed connects (and broken connections) since the device last answered: the backoff's attempt. */
  #attempt = 0;
  #nextConnectAt = 0;
  #reason: string | undefined;
  #lastError: SourceError | undefined;
  /** The connect in flight, which a write and the poll share rather than open two connections. */
  #connecting: Promise<DeviceConnection | undefined> | undefined;

  constructor(device: ModbusDevice, context: PollerContext) {
    this.device = device;
    this.plan = planRequests(device.points, device);
    this.#context = context;
    this.#streams = new Map(
      device.points.map((point) => [
        point,
        { point, topic: context.topicOf(point), report: new ExceptionReport(point) },
      ]),
    );
  }

  get counters(): Readonly<Counters> {
    return this.#counters;
  }

  /** Readings durable, and writes refused (and made again). */
  get writes(): { readonly written: number; readonly refused: number } {
    return { written: this.#writer?.written ?? 0, refused: this.#writer?.refused ?? 0 };
  }

  /** The latest of the device's failures and the log's refusals. */
  get lastError(): SourceError | undefined {
    const refusal = this.#writer?.lastError;
    const device = this.#lastError;
    if (refusal === undefined || (device !== undefined && device.time > refusal.time)) return device;
    return refusal;
  }

  start(output: SourceOutput): void {
    this.#writer = new CycleWriter(output, this.#context.timers, this.#context.now);
    this.#running = true;
    this.#startTime = this.#context.now();
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#stopping.abort();
    if (this.#timer !== undefined) this.#context.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writer?.stop();
    this.#connection?.close();
    await this.#cycle;
    this.#connection?.close();
    this.#connection = undefined;
  }

  stats(): DeviceStats {
    const counters = this.#counters;
    return {
      name: this.device.name,
      connected: this.#connection?.isOpen ?? false,
      requestsPerCycle: this.plan.length,
      cycles: counters.cycles,
      lastCycleMs: counters.lastCycleMs,
      requests: counters.requests,
      exceptions: counters.exceptions,
      timeouts: counters.timeouts,
      connects: counters.connects,
      connectFailures: counters.connectFailures,
      reason: this.#reason,
    };
  }

  #schedule(index: number): void {
    this.#cycleIndex = index;
    const dueAt = this.#startTime + index * this.device.pollIntervalMs;
    this.#timer = this.#context.timers.setTimeout(
      () => {
        this.#timer = undefined;
        this.#cycle = this.#runCycle(dueAt).finally(() => {
          this.#cycle = undefined;
        });
      },
      Math.min(MAX_TIMER_DELAY_MS, Math.max(0, dueAt - this.#context.now())),
    );
  }

  async #runCycle(cycleAt: number): Promise<void> {
    if (!this.#running) return;
    const interval = this.device.pollIntervalMs;
    const startedAt = this.#context.now();
    this.#counters.lagMs = Math.max(0, startedAt - cycleAt);
    const readings = await this.#poll();
    if (!this.#running) return;
    const nextCycleAt = cycleAt + interval;
    const kept: TopicReading[] = [];
    for (const [stream, reading] of readings) {
      if (stream.report.offer(reading, cycleAt, nextCycleAt)) kept.push({ topic: stream.topic, reading });
    }
    await this.#writer?.writeAll(kept);
    if (!this.#running) return;
    this.#counters.cycles++;
    this.#counters.lastCycleMs = this.#context.now() - startedAt;
    const next = Math.floor((this.#context.now() - this.#startTime) / interval) + 1;
    if (next > this.#cycleIndex + 1) this.#counters.behind++;
    this.#schedule(Math.max(next, this.#cycleIndex + 1));
  }

  /** One reading per point of the device, in plan order. */
  async #poll(): Promise<Map<PointStream, PointReading>> {
    const readings = new Map<PointStream, PointReading>();
    const connection = await this.#connected();
    if (connection === undefined) {
      this.#markBad(this.plan, this.#reason ?? 'not connected', readings);
      return readings;
    }
    let answered = true;
    for (const [index, request] of this.plan.entries()) {
      const outcome = await connection.read(request.table, request.address, request.count);
      this.#counters.requests++;
      if (!this.#running) return readings;
      if (outcome.kind === 'failed') {
        answered = false;
        this.#failed(outcome.reason);
        if (outcome.reason.startsWith('Modbus exception')) this.#counters.exceptions++;
        if (outcome.reason === 'timeout') this.#counters.timeouts++;
        if (!outcome.broken) {
          this.#attempt = 0;
          this.#markBad([request], outcome.reason, readings);
          continue;
        }
        // The connection is gone: what is left of the cycle is unread for the same reason.
        this.#connection = undefined;
        this.#nextConnectAt = this.#context.now() + this.#backoff();
        this.#markBad(this.plan.slice(index), outcome.reason, readings);
        return readings;
      }
      this.#attempt = 0;
      this.#decode(request, outcome, readings);
    }
    // Every request answered: the device is well (a point's own non-finite value is not its fault).
    if (answered) this.#reason = undefined;
    return readings;
  }

  /**
   * Sends one write on the device's connection, in turn with the poll's reads (connecting first
   * when there is none and the backoff allows), unless `deadline` (by the source's clock) passed
   * first. A broken connection is the poll's to make again.
   */
  async write(request: WriteRequest, deadline: number): Promise<WriteResult> {
    if (!this.#running) return { kind: 'failed', reason: REASONS.stopped, broken: false };
    const connection = await this.#connected();
    if (connection === undefined)
      return { kind: 'failed', reason: `not connected (${this.#reason ?? 'connecting'})`, broken: false };
    return connection.write(request, () => this.#context.now() >= deadline);
  }

  /** The open connection, or undefined when there is none and the backoff says not yet, or it failed. */
  #connected(): Promise<DeviceConnection | undefined> {
    if (this.#connection?.isOpen === true) return Promise.resolve(this.#connection);
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #connect(): Promise<DeviceConnection | undefined> {
    if (this.#connection?.isOpen === true) return this.#connection;
    if (this.#connection !== undefined) {
      // It closed between two cycles (the device hung up): reconnect at once, once.
      this.#connection = undefined;
      this.#failed('connection lost');
      this.#nextConnectAt = this.#context.now();
    }
    if (this.#context.now() < this.#nextConnectAt) return undefined;
    const { device } = this;
    const outcome = await connectDevice({
      host: device.host,
      port: device.port,
      unitId: device.unitId,
      localAddress: device.localAddress,
      timeoutMs: device.timeoutMs,
      timers: this.#context.timers,
      signal: this.#stopping.signal,
    });
    if (outcome.kind === 'failed') {
      this.#counters.connectFailures++;
      this.#failed(outcome.reason);
      this.#nextConnectAt = this.#context.now() + this.#backoff();
      return undefined;
    }
    if (!this.#running) {
      outcome.connection.close();
      return undefined;
    }
    this.#counters.connects++;
    this.#connection = outcome.connection;
    return outcome.connection;
  }

  #backoff(): number {
    return reconnectDelayMs(this.#attempt++, undefined, this.#context.random);
  }

  #decode(
    request: PlannedRequest,
    outcome: Exclude<ReadOutcome, { kind: 'failed' }>,
    readings: Map<PointStream, PointReading>,
  ): void {
    const sourceTime = this.#context.now();
    for (const { point, offset } of request.points) {
      const stream = this.#streamOf(point);
      let value;
      try {
        value =
          outcome.kind === 'registers'
            ? decodeRegisters(point, outcome.bytes, offset)
            : decodeBit(outcome.bits, offset);
      } catch {
        readings.set(stream, this.#bad(stream, 'invalid response', sourceTime));
        continue;
      }
      if (typeof value === 'number' && !Number.isFinite(value)) {
        readings.set(stream, this.#bad(stream, NOT_FINITE, sourceTime));
      } else {
        readings.set(stream, { value, quality: 'good', sourceTime });
      }
    }
  }

  #markBad(
    requests: readonly PlannedRequest[],
    reason: string,
    readings: Map<PointStream, PointReading>,
  ): void {
    const sourceTime = this.#context.now();
    for (const request of requests) {
      for (const { point } of request.points) {
        const stream = this.#streamOf(point);
        readings.set(stream, this.#bad(stream, reason, sourceTime));
      }
    }
  }

  #bad(stream: PointStream, reason: string, sourceTime: number): PointReading {
    return { value: stream.report.lastValue, quality: 'bad', reason, sourceTime };
  }

  #streamOf(point: ModbusPoint): PointStream {
    // Every planned point is one of the device's points, each with its stream.
    return this.#streams.get(point) as PointStream;
  }

  #failed(reason: string): void {
    if (reason !== this.#reason) {
      this.#lastError = {
        code: undefined,
        message: `device ${this.device.name}: ${reason}`,
        time: this.#context.now(),
      };
    }
    this.#reason = reason;
  }
}
