/**
 * mosquitto's own C clients as a phase's publisher and subscribers. `mosquitto_pub -l` publishes
 * each line of its stdin as one message: a line is one batch (payloads.ts: no newline, no NUL in
 * it), so the payload is the very bytes the relay carries. `mosquitto_sub -F %l` prints only each
 * message's length (it still receives and parses the whole message, but writes a few bytes to its
 * stdout, a file here, instead of 16 KiB); `-F %U` prints the wall-clock time it received the message, to the
 * nanosecond, for latency: messages arrive in order (QoS 0 on one TCP connection, and the broker
 * queues without limit), so the n-th line belongs to the n-th line written to the publisher.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { monotonicMs, realtimeMs } from './clock.ts';
import type { MosquittoBroker } from './mosquitto-broker.ts';
import type { PhasePublisher, PhaseSubscriber } from './phase.ts';
import type { MessageShape } from './payloads.ts';
import { LineLog, rejectOnExit, waitForExit, type ChildProcessGroup } from './processes.ts';
import { PROGRESS_INTERVAL_MS } from './settings.ts';
import type { LatencyCapture, Pace, SubscriberReport } from './worker-protocol.ts';

/** Bytes per write to mosquitto_pub's stdin: one pipe buffer. */
const WRITE_BYTES = 64 * 1024;
const NEWLINE = 0x0a;
/** A `%U` line: ten digits of seconds, a dot, nine of nanoseconds, a newline (until the year 2286). */
const REALTIME_LINE_BYTES = 21;
const STOP_TIMEOUT_MS = 3_000;

/** When each message was written to the publisher (wall clock, ms), for the subscribers' latency. */
export class SendLog {
  readonly #times: Float64Array;

  constructor(capacity: number) {
    this.#times = new Float64Array(capacity).fill(Number.NaN);
  }

  record(index: number, at: number): void {
    if (index < this.#times.length) this.#times[index] = at;
  }

  at(index: number): number {
    return this.#times[index] ?? Number.NaN;
  }
}

export class LinePublisher implements PhasePublisher {
  readonly #child: ChildProcess;
  readonly #block: Buffer;
  readonly #lineBytes: number;
  readonly #pace: Pace | undefined;
  readonly #sendLog: SendLog | undefined;
  #allowed = 0;
  #written = 0;
  #startedAt = 0;
  #pumping = false;
  #stopped = false;

  private constructor(child: ChildProcess, batch: Uint8Array, pace?: Pace, sendLog?: SendLog) {
    this.#child = child;
    const line = Buffer.concat([batch, Buffer.of(NEWLINE)]);
    this.#lineBytes = line.byteLength;
    this.#block = Buffer.concat(Array(Math.max(1, Math.floor(WRITE_BYTES / line.byteLength))).fill(line));
    this.#pace = pace;
    this.#sendLog = sendLog;
  }

  static async start(
    group: ChildProcessGroup,
    broker: MosquittoBroker,
    clientId: string,
    topic: string,
    batch: Uint8Array,
    options: { readonly pace?: Pace; readonly sendLog?: SendLog } = {},
  ): Promise<LinePublisher> {
    const args = [...broker.clientArgs, '-i', clientId, '-t', topic, '-q', '0', '-l'];
    const child = group.spawn('mosquitto_pub', args, { stdio: ['pipe', 'ignore', 'pipe'] });
    const errors = new LineLog(child.stderr!);
    await Promise.race([
      broker.waitForConnection(clientId),
      rejectOnExit(child, 'mosquitto_pub', () => errors.tail()),
    ]);
    return new LinePublisher(child, batch, options.pace, options.sendLog);
  }

  get pid(): number {
    return this.#child.pid!;
  }

  grant(allowed: number): void {
    this.#allowed = Math.max(this.#allowed, allowed);
    if (this.#startedAt === 0) this.#startedAt = monotonicMs();
    if (!this.#pumping) void this.#pump();
  }

  stop(): Promise<number> {
    this.#stopped = true;
    if (this.#child.exitCode !== null) return Promise.reject(new Error('mosquitto_pub exited'));
    return Promise.resolve(this.#written);
  }

  async close(): Promise<void> {
    this.#stopped = true;
    this.#child.stdin!.end();
    if ((await waitForExit(this.#child, STOP_TIMEOUT_MS)) === undefined) this.#child.kill('SIGKILL');
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    const stdin = this.#child.stdin!;
    try {
      while (!this.#stopped && this.#written < this.#allowed && this.#child.exitCode === null) {
        let lines = Math.min(this.#allowed - this.#written, this.#block.byteLength / this.#lineBytes);
        if (this.#pace !== undefined) {
          // Every message due by now goes at once (with its own send time), as the Node publishers do.
          const elapsedMs = monotonicMs() - this.#startedAt;
          const due = Math.floor((elapsedMs * this.#pace.messagesPerSecond) / 1000) + 1 - this.#written;
          if (due <= 0) {
            const wait = (this.#written * 1000) / this.#pace.messagesPerSecond - elapsedMs;
            await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
            continue;
          }
          lines = Math.min(lines, due);
          const now = realtimeMs();
          for (let line = 0; line < lines; line++) this.#sendLog?.record(this.#written + line, now);
        }
        this.#written += lines;
        if (!stdin.write(this.#block.subarray(0, lines * this.#lineBytes))) {
          await new Promise<void>((resolve) => {
            const done = () => {
              stdin.off('drain', done);
              this.#child.off('exit', done);
              resolve();
            };
            stdin.once('drain', done);
            this.#child.once('exit', done);
          });
        }
      }
    } finally {
      this.#pumping = false;
    }
  }
}

export class LineSubscriber implements PhaseSubscriber {
  readonly #child: ChildProcess;
  readonly #stderr: LineLog;
  readonly #output: { readonly path: string; readonly fd: number };
  readonly #lineBytes: number;
  readonly #expectedLine: string;
  readonly #latency: (LatencyCapture & { readonly sendLog: SendLog }) | undefined;
  readonly #timer: NodeJS.Timeout;
  messages = 0;
  lastAt = 0;
  onProgress: (() => void) | undefined;

  private constructor(
    child: ChildProcess,
    output: { readonly path: string; readonly fd: number },
    shape: MessageShape,
    latency?: LatencyCapture & { readonly sendLog: SendLog },
  ) {
    this.#child = child;
    this.#stderr = new LineLog(child.stderr!);
    this.#output = output;
    this.#expectedLine = `${shape.messageBytes}\n`;
    this.#lineBytes = latency === undefined ? this.#expectedLine.length : REALTIME_LINE_BYTES;
    this.#latency = latency;
    // mosquitto_sub flushes each line: read from a pipe, that is one event in this process per
    // message. It writes to a file instead, whose size says how many lines are there.
    this.#timer = setInterval(() => this.#poll(), PROGRESS_INTERVAL_MS);
  }

  static async start(
    group: ChildProcessGroup,
    broker: MosquittoBroker,
    clientId: string,
    topic: string,
    shape: MessageShape,
    outputDir: string,
    latency?: LatencyCapture & { readonly sendLog: SendLog },
  ): Promise<LineSubscriber> {
    const format = latency === undefined ? '%l' : '%U';
    const args = [...broker.clientArgs, '-i', clientId, '-t', topic, '-q', '0', '-F', format];
    const path = join(outputDir, `${clientId}.out`);
    const fd = openSync(path, 'w+');
    const child = group.spawn('mosquitto_sub', args, { stdio: ['ignore', fd, 'pipe'] });
    const subscriber = new LineSubscriber(child, { path, fd }, shape, latency);
    try {
      await Promise.race([
        broker.waitForSubscription(clientId, topic),
        rejectOnExit(child, 'mosquitto_sub', () => subscriber.#stderr.tail()),
      ]);
    } catch (error) {
      await subscriber.close();
      throw error;
    }
    return subscriber;
  }

  get pid(): number {
    return this.#child.pid!;
  }

  async stop(): Promise<SubscriberReport> {
    clearInterval(this.#timer);
    this.#poll();
    const text = await readFile(this.#output.path, 'ascii');
    if (this.#latency === undefined) {
      // Every line of a length-only subscriber is the same: any other one is a bad message.
      const malformed = text
        .split('\n')
        .filter(
          (line, index, lines) => index < lines.length - 1 && `${line}\n` !== this.#expectedLine,
        ).length;
      return { messages: this.messages, malformed };
    }
    return { messages: this.messages, malformed: 0, latenciesMs: this.#latencies(text) };
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#child.kill('SIGTERM');
    if ((await waitForExit(this.#child, STOP_TIMEOUT_MS)) === undefined) this.#child.kill('SIGKILL');
    closeSync(this.#output.fd);
    await rm(this.#output.path, { force: true });
  }

  #poll(): void {
    const messages = Math.floor(fstatSync(this.#output.fd).size / this.#lineBytes);
    if (messages === this.messages) return;
    this.messages = messages;
    this.lastAt = monotonicMs();
    this.onProgress?.();
  }

  /** `%U` lines: `seconds.nanoseconds` of CLOCK_REALTIME, the n-th for the n-th message sent. */
  #latencies(text: string): Float64Array {
    const latency = this.#latency!;
    const lines = text.split('\n');
    const samples: number[] = [];
    for (
      let index = latency.skipMessages;
      index < lines.length - 1 && samples.length < latency.maxSamples;
      index++
    ) {
      const [seconds, nanoseconds] = lines[index]!.split('.');
      const receivedAt = Number(seconds) * 1000 + Number(nanoseconds) / 1e6;
      const sentAt = latency.sendLog.at(index);
      if (Number.isFinite(receivedAt) && Number.isFinite(sentAt)) samples.push(receivedAt - sentAt);
    }
    return Float64Array.from(samples);
  }
}
