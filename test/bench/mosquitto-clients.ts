/**
 * mosquitto's own C clients, driven through their stdio: mosquitto_pub -l sends one message per
 * line of its stdin, mosquitto_sub prints one line per message. Every payload is PAYLOAD_BYTES of
 * printable ASCII, so every message is exactly one line of PAYLOAD_BYTES + 1 bytes.
 */
import type { ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { MosquittoBroker } from './mosquitto-broker.ts';
import { makePayloads } from './payloads.ts';
import { LineLog, type ChildProcessGroup } from './processes.ts';
import { PAYLOAD_BYTES } from './settings.ts';

export const LINE_BYTES = PAYLOAD_BYTES + 1;
/** Lines per write to mosquitto_pub's stdin: 64 KiB, one pipe buffer. */
const LINES_PER_WRITE = 512;

/** A mosquitto_sub that exits after `count` messages; its output is counted, never stored. */
export class CountingSubscriber {
  readonly clientId: string;
  readonly child: ChildProcess;
  readonly stderr: LineLog;
  bytes = 0;
  /** performance.now() of the last output. */
  lastDataAt = 0;

  constructor(
    group: ChildProcessGroup,
    broker: MosquittoBroker,
    clientId: string,
    topic: string,
    count: number,
  ) {
    this.clientId = clientId;
    const args = [...broker.clientArgs, '-i', clientId, '-t', topic, '-q', '0', '-C', String(count)];
    this.child = group.spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.stderr = new LineLog(this.child.stderr!);
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length;
      this.lastDataAt = performance.now();
    });
  }

  get messages(): number {
    return Math.floor(this.bytes / LINE_BYTES);
  }
}

/** mosquitto_pub in line mode, QoS 0: each line written to its stdin is published as it arrives. */
export function spawnLinePublisher(
  group: ChildProcessGroup,
  broker: MosquittoBroker,
  clientId: string,
  topic: string,
): ChildProcess {
  return group.spawn('mosquitto_pub', [...broker.clientArgs, '-i', clientId, '-t', topic, '-q', '0', '-l'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
}

/** Writes `count` payload lines to `stdin`, honouring pipe backpressure, until done or `deadline`. */
export async function writePayloadLines(stdin: Writable, count: number, deadline: number): Promise<number> {
  const block = Buffer.concat(
    makePayloads(LINES_PER_WRITE).flatMap((payload) => [payload, Buffer.from('\n')]),
  );
  let written = 0;
  while (written < count && performance.now() < deadline) {
    const lines = Math.min(LINES_PER_WRITE, count - written);
    written += lines;
    if (stdin.write(lines === LINES_PER_WRITE ? block : block.subarray(0, lines * LINE_BYTES))) continue;
    if (!(await drained(stdin, deadline))) break;
  }
  return written;
}

/** True once `stdin` drains; false if it closes (the child went away) or `deadline` passes first. */
function drained(stdin: Writable, deadline: number): Promise<boolean> {
  return new Promise((resolve) => {
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      stdin.off('drain', onDrain);
      stdin.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => finish(true);
    const onClose = () => finish(false);
    const timer = setTimeout(onClose, Math.max(0, deadline - performance.now()));
    stdin.on('drain', onDrain);
    stdin.on('close', onClose);
  });
}

/** Reads a stream one payload line at a time: the closed-loop latency workloads wait on it. */
export class LineReader {
  #buffered = '';
  #dataAt = 0;
  #waiting: ((line: string) => void) | undefined;
  /** performance.now() of the data event that completed the last line handed out. */
  lastLineAt = 0;

  constructor(stream: Readable) {
    stream.setEncoding('ascii');
    stream.on('data', (chunk: string) => {
      this.#buffered += chunk;
      this.#dataAt = performance.now();
      this.#handOut();
    });
  }

  /** The next line; rejects after `timeoutMs`. One waiter at a time (closed loop). */
  next(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined;
        reject(new Error(`no line within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.#handOut();
    });
  }

  #handOut(): void {
    const end = this.#buffered.indexOf('\n');
    const waiting = this.#waiting;
    if (end < 0 || waiting === undefined) return;
    this.lastLineAt = this.#dataAt;
    const line = this.#buffered.slice(0, end);
    this.#buffered = this.#buffered.slice(end + 1);
    this.#waiting = undefined;
    waiting(line);
  }
}
