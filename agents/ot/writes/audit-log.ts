/**
 * The write audit log on the OT host: one JSON line per write command, executed or refused, with
 * who sent it (the session's peer, as the relay named it from the IT agent's certificate), the
 * point, the value, the outcome and its code; appended and fdatasync'd before the requester hears
 * the outcome. A command that passed every check has a line of its own (`executing`) before the
 * device is written: a log that cannot be written refuses the write, so nothing reaches a device
 * unaudited. `audit.jsonl` is rotated to `audit.jsonl.1` when it passes MAX_AUDIT_BYTES, so a
 * flood of refused commands fills at most twice that.
 */
import { open, rename, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { PRIVATE_FILE_MODE } from '../../../relay/protocol/file-permissions.ts';
import { syncDirectory } from '../../../relay/protocol/durable-files.ts';
import type { WriteValue } from '../sources/source.ts';

export const AUDIT_FILE = 'audit.jsonl';
/** 64 MiB: some 200,000 entries, months of a plant's writes; a flood of refusals is bounded by it. */
export const MAX_AUDIT_BYTES = 64 * 1024 * 1024;

export interface WriteAuditEntry {
  readonly time: string;
  readonly session: number;
  /** The session's peer: the IT agent's identity as the relay took it from its certificate. */
  readonly peer: string | undefined;
  readonly topic: string;
  readonly value?: WriteValue;
  readonly nonce?: string;
  readonly deadline?: number;
  /** `executing`: every check passed, the device write goes out next; its outcome follows. */
  readonly outcome: 'executing' | 'done' | 'refused' | 'failed';
  readonly code?: string;
  /** What the requester was told. */
  readonly message?: string;
  /** What only the OT host keeps: the device or node, a window file's problem. */
  readonly detail?: string;
}

/** `Entry`: the IT agent's API audits who asked for a write in the same way (agents/it/write-audit.ts). */
export class WriteAuditLog<Entry extends object = WriteAuditEntry> {
  readonly #path: string;
  #handle: FileHandle | undefined;
  #bytes = 0;
  /** An append failed part way: the next line starts on a line of its own. */
  #damaged = false;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(dir: string) {
    this.#path = join(dir, AUDIT_FILE);
  }

  /** Appends the entry and flushes it; rejects if the disk refused it. */
  record(entry: Entry): Promise<void> {
    const line = `${JSON.stringify(entry)}\n`;
    const run = this.#tail.then(() => this.#append(line));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.#tail;
    await this.#handle?.close();
    this.#handle = undefined;
  }

  async #append(line: string): Promise<void> {
    if (this.#handle === undefined) {
      this.#handle = await open(this.#path, 'a', PRIVATE_FILE_MODE);
      this.#bytes = (await stat(this.#path)).size;
    }
    if (this.#bytes + line.length > MAX_AUDIT_BYTES && this.#bytes > 0) {
      await this.#handle.close();
      this.#handle = undefined;
      await rename(this.#path, `${this.#path}.1`);
      await syncDirectory(join(this.#path, '..'));
      await this.#append(line);
      return;
    }
    const bytes = Buffer.from(this.#damaged ? `\n${line}` : line);
    this.#damaged = true;
    // A full disk takes part of a line and says so only in the count.
    const { bytesWritten } = await this.#handle.write(bytes);
    this.#bytes += bytesWritten;
    if (bytesWritten !== bytes.length)
      throw new Error(`only ${bytesWritten} of ${bytes.length} bytes written`);
    await this.#handle.datasync();
    this.#damaged = false;
  }
}
