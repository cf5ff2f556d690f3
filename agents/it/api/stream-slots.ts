/**
 * The live streams the API holds open, and whose they are. Each holds a store follower, a queue
 * and a socket for as long as its client keeps it, so they are bounded twice: MAX_STREAMS for all
 * users together, and it.api.maxStreamsPerUser for one, so that one signed-in user (a viewer as
 * much as anyone) cannot take every stream the API serves.
 *
 * A user is its name, as authentication found it: its token and its password, every tab, every
 * connection and address count together, and the shared `auth` secret of earlier versions is one
 * user whoever holds it. Without users (loopback, anyone) there is no one to tell apart: only
 * MAX_STREAMS bounds them. A slot is taken once the request is authenticated, validated and its
 * role checked, and given back when the stream ends, however it ends.
 */
import { DmzError } from '../../../relay/protocol/errors.ts';
import { MAX_STREAMS } from './api-config.ts';
import type { ApiCaller } from './auth.ts';

/** An open live stream: who opened it, with what, and how to end it (api-server.ts, on a reload). */
export interface LiveStream {
  readonly authorization: string | undefined;
  readonly caller: ApiCaller;
  cut(): void;
}

export class StreamSlots {
  readonly #open = new Set<LiveStream>();
  /** Streams open by user name; a user with none has no entry (at most MAX_STREAMS entries). */
  readonly #byUser = new Map<string, number>();
  readonly #perUser: number;

  constructor(perUser: number) {
    this.#perUser = perUser;
  }

  /** The streams open now: a reload of the users checks each again. */
  get open(): readonly LiveStream[] {
    return [...this.#open];
  }

  /** Takes a slot for `stream`, or refuses it: the user's own bound first, then everyone's. */
  take(stream: LiveStream): void {
    const { user } = stream.caller;
    const held = user === undefined ? 0 : (this.#byUser.get(user) ?? 0);
    if (held >= this.#perUser) {
      throw new DmzError(
        'AGENT_ERR_API_USER_STREAMS',
        `user ${user ?? '(none)'} holds ${held} live streams, the most one user may (it.api.maxStreamsPerUser): close one first`,
      );
    }
    if (this.#open.size >= MAX_STREAMS) {
      throw new DmzError('AGENT_ERR_API_TOO_MANY_STREAMS', `at most ${MAX_STREAMS} live streams at once`);
    }
    this.#open.add(stream);
    if (user !== undefined) this.#byUser.set(user, held + 1);
  }

  /** Gives the slot of `stream` back; a second call for it does nothing. */
  release(stream: LiveStream): void {
    if (!this.#open.delete(stream)) return;
    const { user } = stream.caller;
    if (user === undefined) return;
    const left = (this.#byUser.get(user) ?? 1) - 1;
    if (left === 0) this.#byUser.delete(user);
    else this.#byUser.set(user, left);
  }
}
