/**
 * The link's calls: frames that the relay answers. Ack-style calls (session open, subscribe,
 * unsubscribe, renew) carry a `ref` that the answer (ack, sessionAccept, renewed, or an error
 * naming that ref) repeats; a request carries an `id` that its response repeats. Both draw from
 * one counter, so a number is never in use twice on one link.
 */
import { DmzError, isErrorCode } from '../../relay/protocol/errors.ts';
import type { ToAgentFrameOf } from '../../relay/protocol/frames.ts';
import { MAX_U32 } from '../../relay/protocol/limits.ts';

/** The frames that settle a call. */
export type CallAnswer = ToAgentFrameOf<'ack' | 'sessionAccept' | 'renewed' | 'error' | 'response'>;
/** What an ack-style call resolves with (an error frame rejects it). */
export type Acknowledgement = ToAgentFrameOf<'ack' | 'sessionAccept' | 'renewed'>;

interface Pending<T> {
  resolve(value: T): void;
  reject(error: DmzError): void;
}

export class Calls {
  readonly #acks = new Map<number, Pending<Acknowledgement>>();
  readonly #responses = new Map<number, Pending<Uint8Array>>();
  #next = 1;

  /** A fresh ref or request id (u32 on the wire; 0 is never used). */
  nextNumber(): number {
    const number = this.#next;
    this.#next = number === MAX_U32 ? 1 : number + 1;
    return number;
  }

  /** Waits for the answer to the call with `ref`; register before sending, so none is missed. */
  awaitAck(ref: number): Promise<Acknowledgement> {
    return new Promise((resolve, reject) => this.#acks.set(ref, { resolve, reject }));
  }

  /** Waits for the response to request `id`: its payload, or a rejection with the error's code. */
  awaitResponse(id: number): Promise<Uint8Array> {
    return new Promise((resolve, reject) => this.#responses.set(id, { resolve, reject }));
  }

  /** Settles the call `answer` is for; an answer nobody waits for (a late one) is dropped. */
  settle(answer: CallAnswer): void {
    switch (answer.type) {
      case 'ack':
      case 'sessionAccept':
      case 'renewed':
        take(this.#acks, answer.ref)?.resolve(answer);
        return;
      case 'error':
        // An error without a ref answers no call (a publish refused, a subscription withdrawn).
        if (answer.ref !== undefined)
          take(this.#acks, answer.ref)?.reject(callError(answer.code, answer.message));
        return;
      case 'response': {
        const pending = take(this.#responses, answer.id);
        if (answer.error === undefined) pending?.resolve(answer.payload ?? new Uint8Array());
        else pending?.reject(callError(answer.error.code, answer.error.message));
        return;
      }
    }
  }

  /** The link closed: every call still open fails with `error`. */
  rejectAll(error: DmzError): void {
    for (const pending of [...this.#acks.values(), ...this.#responses.values()]) pending.reject(error);
    this.#acks.clear();
    this.#responses.clear();
  }
}

function take<T>(table: Map<number, Pending<T>>, key: number): Pending<T> | undefined {
  const pending = table.get(key);
  table.delete(key);
  return pending;
}

/** The relay's code when it is one of ours; a code this agent does not know is an internal error. */
export function callError(code: string, message: string): DmzError {
  return new DmzError(isErrorCode(code) ? code : 'RELAY_ERR_INTERNAL', message);
}
