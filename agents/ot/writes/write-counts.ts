/**
 * Write commands counted by outcome and code since start, for `dmz-agent status` and the admin
 * /metrics: the OT agent counts what it answered (write-service.ts), the IT agent what it was
 * answered (agents/it/write-client.ts). Codes come from the one catalog, so the set is bounded.
 */
import type { ErrorCode } from '../../../relay/protocol/errors.ts';

export interface WriteCountsSnapshot {
  readonly done: number;
  /** By code: a check said no, nothing was written. */
  readonly refused: Readonly<Record<string, number>>;
  /** By code: passed the checks (or never reached them), not done. */
  readonly failed: Readonly<Record<string, number>>;
}

export class WriteCounts {
  #done = 0;
  readonly #refused = new Map<ErrorCode, number>();
  readonly #failed = new Map<ErrorCode, number>();

  done(): void {
    this.#done++;
  }

  notDone(outcome: 'refused' | 'failed', code: ErrorCode): void {
    const counts = outcome === 'refused' ? this.#refused : this.#failed;
    counts.set(code, (counts.get(code) ?? 0) + 1);
  }

  snapshot(): WriteCountsSnapshot {
    return {
      done: this.#done,
      refused: Object.fromEntries(this.#refused),
      failed: Object.fromEntries(this.#failed),
    };
  }
}
