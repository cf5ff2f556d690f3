/**
 * The coordinator's side of the client workers (client-worker.ts): starting them, asking them
 * things with a bounded wait for the answer, and hearing their progress.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LineLog, type ChildProcessGroup } from './processes.ts';
import { STARTUP_TIMEOUT_MS } from './settings.ts';
import type { FromWorker, ToWorker } from './worker-protocol.ts';

const WORKER = fileURLToPath(new URL('./client-worker.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A request without an `id`: the worker's answer is matched to it by one. */
type Request = ToWorker extends infer T ? (T extends { id: number } ? Omit<T, 'id'> : never) : never;

export class ClientWorker {
  readonly #child: ChildProcess;
  readonly #stderr: LineLog;
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  #nextId = 1;
  /** Called with each progress report of the worker's subscriber. */
  onProgress: ((messages: number, lastAt: number) => void) | undefined;

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.#stderr = new LineLog(child.stderr!);
    child.on('message', (message: FromWorker) => this.#receive(message));
    child.once('exit', (code, signal) => {
      const error = new Error(`client worker exited (${code ?? signal}): ${this.#stderr.tail()}`);
      for (const pending of this.#pending.values()) pending.reject(error);
      this.#pending.clear();
    });
  }

  static async start(group: ChildProcessGroup): Promise<ClientWorker> {
    const child = group.spawn(process.execPath, ['--import', 'tsx', WORKER], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    const worker = new ClientWorker(child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('a client worker did not start in time')),
        STARTUP_TIMEOUT_MS,
      );
      child.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', () => {
        clearTimeout(timer);
        reject(new Error(`a client worker exited during start-up: ${worker.#stderr.tail()}`));
      });
    });
    return worker;
  }

  get pid(): number {
    return this.#child.pid!;
  }

  /** Sends `request` and waits for its answer, at most `timeoutMs`. */
  request<T>(request: Request, timeoutMs: number = STARTUP_TIMEOUT_MS): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`client worker ${this.pid}: no answer to ${request.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#child.send({ ...request, id });
    });
  }

  /** A publisher's credit: no answer. */
  credit(allowed: number): void {
    if (this.#child.connected) this.#child.send({ op: 'credit', allowed } satisfies ToWorker);
  }

  #receive(message: FromWorker): void {
    if (message.op === 'progress') {
      this.onProgress?.(message.messages, message.lastAt);
    } else if (message.op === 'reply') {
      const pending = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.ok) pending?.resolve(message.value);
      else pending?.reject(new Error(message.error));
    }
  }
}

/** `count` workers, started side by side. */
export function startClientWorkers(group: ChildProcessGroup, count: number): Promise<ClientWorker[]> {
  return Promise.all(Array.from({ length: count }, () => ClientWorker.start(group)));
}
