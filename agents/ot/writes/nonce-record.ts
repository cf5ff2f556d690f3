/**
 * The nonces of write commands this agent has taken, kept until their deadlines are well past, so
 * that a command seen before does nothing, also after a restart. A nonce is claimed in memory at
 * once (two copies arriving together: one wins) and written to `nonces.jsonl` with fdatasync
 * before the command is executed: after a crash the file holds every nonce of every command that
 * may have run. A torn last line is a nonce whose sync never finished, so its command never ran.
 *
 * A nonce is forgotten once its deadline is NONCE_MARGIN_MS past: by then its command is refused
 * as expired anyway. A clock that steps back further than the margin (an NTP correction, or an
 * NTP server in the DMZ that the relay's host controls) would make such a command's deadline lie
 * ahead again, so forgetting raises a floor: the latest deadline ever forgotten. A command whose
 * deadline is not past the floor is refused as expired, whatever the clock says; the floor is
 * kept in the file (its first line) and only ever rises. The file is rewritten with the floor and
 * the live nonces at open, and when it has grown to twice their number.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { PRIVATE_FILE_MODE } from '../../../relay/protocol/file-permissions.ts';
import { replaceFileDurably } from '../../../relay/protocol/durable-files.ts';

export const NONCE_FILE = 'nonces.jsonl';
/** Kept this long past their deadline: a clock step back of up to 10 minutes replays nothing. */
export const NONCE_MARGIN_MS = 10 * 60_000;
/**
 * Live nonces at most. A command's deadline is at most a minute ahead, so 100,000 is over 1,500
 * writes a second for a minute plus the margin: far past any plant's writes. Beyond it commands
 * are refused (AGENT_ERR_WRITE_BUSY), never executed without their nonce recorded.
 */
export const MAX_LIVE_NONCES = 100_000;
/** Lines the file may hold before it is compacted: twice the live ones, and never fewer than this. */
const MIN_COMPACT_LINES = 1024;

export class NonceRecord {
  readonly #path: string;
  readonly #now: () => number;
  /** nonce -> deadline */
  readonly #live = new Map<string, number>();
  /** The latest deadline of a forgotten nonce: no command with a deadline up to it is taken. */
  #floor: number;
  #handle: FileHandle;
  #lines: number;
  /** An append or a rewrite failed part way: the file must be rewritten before the next append. */
  #damaged = false;
  /** Appends and compactions, one after another. */
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(
    path: string,
    handle: FileHandle,
    live: Map<string, number>,
    floor: number,
    now: () => number,
  ) {
    this.#path = path;
    this.#handle = handle;
    this.#now = now;
    this.#live = live;
    this.#floor = floor;
    this.#lines = live.size + 1;
  }

  /** Reads the record in `dir` (created if absent), keeping the nonces still live. */
  static async open(dir: string, now: () => number = Date.now): Promise<NonceRecord> {
    const path = join(dir, NONCE_FILE);
    const live = new Map<string, number>();
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const forgetBefore = now() - NONCE_MARGIN_MS;
    let floor = 0;
    for (const line of text.split('\n')) {
      const entry = parseLine(line);
      if (entry === undefined) continue;
      if ('floor' in entry) floor = Math.max(floor, entry.floor);
      else if (entry.deadline >= forgetBefore) live.set(entry.nonce, entry.deadline);
      else floor = Math.max(floor, entry.deadline);
    }
    await replaceFileDurably(path, formatRecord(floor, live));
    const handle = await open(path, 'a', PRIVATE_FILE_MODE);
    return new NonceRecord(path, handle, live, floor, now);
  }

  /**
   * Claims `nonce` and makes the claim durable; resolves once it is on disk. Rejects with
   * AGENT_ERR_WRITE_REPLAYED when it was claimed before, AGENT_ERR_WRITE_BUSY when the record is
   * full, AGENT_ERR_WRITE_STORAGE when it could not be written (the claim then stands in memory:
   * the command is not executed, and a retry of it is a replay).
   */
  async claim(nonce: string, deadline: number): Promise<void> {
    if (this.#live.has(nonce)) throw new DmzError('AGENT_ERR_WRITE_REPLAYED');
    if (deadline <= this.#floor) {
      throw new DmzError(
        'AGENT_ERR_WRITE_EXPIRED',
        "the deadline is older than commands this agent has already forgotten (has this host's clock stepped back?)",
      );
    }
    if (this.#live.size >= MAX_LIVE_NONCES) this.#forgetExpired();
    if (this.#live.size >= MAX_LIVE_NONCES) throw new DmzError('AGENT_ERR_WRITE_BUSY');
    this.#live.set(nonce, deadline);
    try {
      await this.#serially(async () => {
        // After a failed append the file's end is unknown (part of a line, a page the kernel
        // dropped): it is written anew from memory before anything is appended to it again.
        if (this.#damaged) await this.#rewrite();
        this.#damaged = true;
        const line = Buffer.from(formatLine(nonce, deadline));
        // A full disk (or a file size limit) takes part of a line and says so only in the count.
        const { bytesWritten } = await this.#handle.write(line);
        if (bytesWritten !== line.length)
          throw new Error(`only ${bytesWritten} of ${line.length} bytes written`);
        await this.#handle.datasync();
        this.#damaged = false;
        this.#lines++;
      });
    } catch (cause) {
      throw new DmzError('AGENT_ERR_WRITE_STORAGE', undefined, { cause });
    }
    if (this.#lines > Math.max(MIN_COMPACT_LINES, 2 * this.#live.size)) void this.#compact();
  }

  get size(): number {
    return this.#live.size;
  }

  async close(): Promise<void> {
    await this.#tail.catch(() => undefined);
    await this.#handle.close();
  }

  #forgetExpired(): void {
    const forgetBefore = this.#now() - NONCE_MARGIN_MS;
    for (const [nonce, deadline] of this.#live) {
      if (deadline >= forgetBefore) continue;
      this.#live.delete(nonce);
      this.#floor = Math.max(this.#floor, deadline);
    }
  }

  /** Rewrites the file with the live nonces, in turn with the appends. */
  #compact(): Promise<void> {
    // The next append reports a storage that fails; compaction retries later.
    return this.#serially(() => this.#rewrite()).catch(() => undefined);
  }

  /** The floor and the live nonces, written anew (atomically: a crash leaves the old or the new). */
  async #rewrite(): Promise<void> {
    this.#damaged = true;
    this.#forgetExpired();
    await replaceFileDurably(this.#path, formatRecord(this.#floor, this.#live));
    await this.#handle.close().catch(() => undefined);
    this.#handle = await open(this.#path, 'a', PRIVATE_FILE_MODE);
    this.#lines = this.#live.size + 1;
    this.#damaged = false;
  }

  #serially<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(step, step);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

function formatLine(nonce: string, deadline: number): string {
  return `${JSON.stringify({ nonce, deadline })}\n`;
}

/** The whole file: the floor first, then every live nonce. */
function formatRecord(floor: number, live: ReadonlyMap<string, number>): string {
  const lines = [`${JSON.stringify({ floor })}\n`];
  for (const [nonce, deadline] of live) lines.push(formatLine(nonce, deadline));
  return lines.join('');
}

function parseLine(line: string): { nonce: string; deadline: number } | { floor: number } | undefined {
  if (line === '') return undefined;
  try {
    const entry = JSON.parse(line) as { nonce?: unknown; deadline?: unknown; floor?: unknown };
    if (typeof entry.floor === 'number') return { floor: entry.floor };
    if (typeof entry.nonce === 'string' && typeof entry.deadline === 'number')
      return { nonce: entry.nonce, deadline: entry.deadline };
  } catch {
    // A torn last line: its sync never finished, so its command never ran.
  }
  return undefined;
}
