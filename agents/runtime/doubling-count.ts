/**
 * A count of repeated events that says when one is worth a log line: the 1st, 2nd, 4th, 8th, ...
 * A peer that can cause an event at will (a refused stream open, a refused write, a batch that
 * does not decode) then costs the log about log2(n) lines for n events, and every line carries
 * the count so far, so nothing is hidden.
 */
export class DoublingCount {
  #count = 0;

  get count(): number {
    return this.#count;
  }

  /** Counts one event; true when this one should be logged. */
  note(): boolean {
    this.#count++;
    return (this.#count & (this.#count - 1)) === 0;
  }
}
