/**
 * Refusals in the audit log, aggregated: anyone can make the relay refuse them (connect and hang
 * up, a certificate from another CA, a flood), so one line per refusal would let a stranger fill
 * the audit log's disk. The first refusal of a kind from a source is written at once, with its
 * detail; repeats within the window are counted, and one summary line (count, first, last) closes
 * the window. The audit log's growth from refusals is therefore bounded by the window and the
 * number of sources tracked, not by the attacker's rate: see SECURITY.md.
 */
import { AUDIT_EVENT, type AuditLog } from './audit.ts';

/** One minute: short enough that an operator watching the log sees a flood while it lasts. */
export const REFUSAL_WINDOW_MS = 60_000;
/**
 * Distinct (event, source, reason) keys tracked per window. Beyond it, refusals from further
 * sources are counted under the source `*`: an attacker with many addresses (an IPv6 prefix) gets
 * one summary line, not one per address.
 */
export const MAX_REFUSAL_SOURCES = 1024;
/** The source under which refusals from sources beyond MAX_REFUSAL_SOURCES are counted. */
const OTHER_SOURCES = '*';

type RefusalEvent = typeof AUDIT_EVENT.agentRefused | typeof AUDIT_EVENT.enrollmentRefused;

interface Repeats {
  readonly event: RefusalEvent;
  readonly address: string;
  readonly reason: string;
  readonly detail: string | undefined;
  /** Refusals after the first one, within the window. */
  count: number;
  first: number;
  last: number;
}

export class RefusalAudit {
  readonly #audit: AuditLog;
  readonly #now: () => number;
  readonly #windows = new Map<string, Repeats>();
  readonly #timer: NodeJS.Timeout;

  constructor(audit: AuditLog, now: () => number = Date.now) {
    this.#audit = audit;
    this.#now = now;
    this.#timer = setInterval(() => this.flush(), REFUSAL_WINDOW_MS);
    this.#timer.unref();
  }

  /**
   * A refusal to `address` for `reason`, with an optional `detail` from a small fixed set (an
   * OpenSSL verification code, an identity check): each (reason, detail) is counted on its own.
   * `fields` (an agent name, a serial) appear on the first line of a window only.
   */
  record(
    event: RefusalEvent,
    address: string,
    reason: string,
    detail?: string,
    fields: Readonly<Record<string, unknown>> = {},
  ): void {
    const now = this.#now();
    const kind = `${reason}\u0000${detail ?? ''}`;
    let key = `${event}\u0000${address}\u0000${kind}`;
    let repeats = this.#windows.get(key);
    if (repeats === undefined && this.#windows.size >= MAX_REFUSAL_SOURCES) {
      key = `${event}\u0000${OTHER_SOURCES}\u0000${kind}`;
      repeats = this.#windows.get(key);
      address = OTHER_SOURCES;
    }
    if (repeats === undefined) {
      this.#windows.set(key, { event, address, reason, detail, count: 0, first: now, last: now });
      this.#audit.record(event, { ...fields, address, reason, ...(detail === undefined ? {} : { detail }) });
      return;
    }
    repeats.count++;
    repeats.last = now;
  }

  /** Writes the summary of every window with repeats, and starts new windows. */
  flush(): void {
    for (const { event, address, reason, detail, count, first, last } of this.#windows.values()) {
      if (count === 0) continue;
      this.#audit.record(event, {
        address,
        reason,
        ...(detail === undefined ? {} : { detail }),
        repeated: count,
        first: new Date(first).toISOString(),
        last: new Date(last).toISOString(),
      });
    }
    this.#windows.clear();
  }

  /** Flushes and stops the window timer (the listener is closing). */
  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
