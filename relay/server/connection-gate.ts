/**
 * Admission before TLS. A TLS handshake costs the relay a key exchange and a signature, which a
 * stranger can make it spend without doing any cryptography; and every open connection holds a
 * file descriptor. So every TCP connection to a listener passes this gate before a single TLS
 * byte is read: a per-address rate check, then a bounded number of slots overall and per source
 * address. A connection that finds no slot waits in a bounded queue (a reconnect storm of honest
 * agents is served at the relay's full handshake rate, in order) or is refused at once, cheaply:
 * destroying an unread TCP socket costs nothing.
 *
 * The gate takes over the server's own `connection` listener (Node's tlsConnectionListener), and
 * the server must be created with `pauseOnConnect`, so that a waiting socket's bytes stay in the
 * kernel until the gate hands it to TLS.
 */
import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/**
 * Under pressure (every slot taken, someone waiting), an agent connection not yet upgraded after
 * this long gives its slot up: an honest TLS 1.3 handshake and the WebSocket upgrade take about
 * three round trips, well under a second even across a slow WAN, so a slot held longer is most
 * likely a client dribbling its handshake or its request to hold it (slowloris).
 */
export const STALE_HANDSHAKE_MS = 2_000;

/** How often the queue is looked at when nothing else happens: waits are bounded in seconds. */
const QUEUE_SWEEP_MS = 250;

/** Why the gate turned a connection away. */
export type GateRefusal = 'rate_limited' | 'address_busy' | 'relay_busy';

export interface ConnectionGateOptions {
  /** Connections holding a slot at once. */
  readonly slots: number;
  /** Connections one source address may hold or wait for at once (trusted networks get more). */
  readonly slotsPerAddress: (address: string) => number;
  /**
   * Under pressure (every slot taken), a connection holding its slot longer than this gives it up
   * to a newcomer (STALE_HANDSHAKE_MS on the agent port, where a slot covers the handshake and the
   * upgrade); absent, slots are never taken back (the enrollment port has its own deadline).
   */
  readonly evictStaleAfterMs?: number;
  /** Connections that may wait for a slot (0: refuse at once), and for how long at most. */
  readonly queue: number;
  readonly maxWaitMs: number;
  /** A pre-TLS check, such as a per-address rate limit: false turns the connection away. */
  readonly allow?: (address: string) => Promise<boolean>;
  /** Told of every connection turned away, after it is destroyed. */
  readonly onRefused: (address: string, reason: GateRefusal) => void;
  /** A failure of `allow` (a bug): logged by the owner, the connection is refused. */
  readonly onError: (error: unknown) => void;
  readonly now?: () => number;
}

export class ConnectionGate {
  readonly #options: ConnectionGateOptions;
  readonly #dispatch: (socket: Socket) => void;
  readonly #now: () => number;
  /** Sockets holding a slot, in the order admitted, with when. */
  readonly #admitted = new Map<Socket, number>();
  /** Sockets waiting for a slot, in arrival order, with when they arrived. */
  readonly #waiting = new Map<Socket, number>();
  readonly #perAddress = new Map<string, number>();
  readonly #addresses = new WeakMap<Socket, string>();

  /** Installs the gate in front of `server`'s TLS layer. */
  static install(server: NetServer, options: ConnectionGateOptions): ConnectionGate {
    if ((server as NetServer & { pauseOnConnect?: boolean }).pauseOnConnect !== true) {
      throw new Error('the connection gate needs a server created with pauseOnConnect');
    }
    const [tlsConnectionListener, ...others] = server.listeners('connection') as ((socket: Socket) => void)[];
    if (tlsConnectionListener === undefined || others.length > 0) {
      throw new Error('the connection gate must be installed before any other connection listener');
    }
    server.removeListener('connection', tlsConnectionListener);
    const gate = new ConnectionGate(options, (socket) => tlsConnectionListener.call(server, socket));
    server.on('connection', (socket: Socket) => gate.#arrive(socket));
    // Waiting connections are served or refused on time even when nothing arrives or closes.
    const sweep = setInterval(() => gate.#serveQueue(), QUEUE_SWEEP_MS);
    sweep.unref();
    server.once('close', () => clearInterval(sweep));
    return gate;
  }

  private constructor(options: ConnectionGateOptions, dispatch: (socket: Socket) => void) {
    this.#options = options;
    this.#dispatch = dispatch;
    this.#now = options.now ?? Date.now;
  }

  /** Connections holding a slot, and waiting for one. */
  get admitted(): number {
    return this.#admitted.size;
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  /**
   * The source address of a TLS socket, as it was when the TCP connection arrived: Node forgets it
   * once a failed handshake has closed the socket, and every refusal must name its source.
   */
  addressOf(socket: TLSSocket): string {
    return this.#addresses.get(tcpSocketOf(socket)) ?? socket.remoteAddress ?? 'unknown';
  }

  /**
   * Gives up `socket`'s slot before it closes: the owner says the connection is past the stage the
   * gate bounds (an agent's WebSocket is established). Otherwise a slot is held until the close.
   */
  release(socket: TLSSocket): void {
    this.#release(tcpSocketOf(socket));
  }

  /** Destroys every connection holding or waiting for a slot but those `keep` names (closing). */
  destroyAll(keep: (socket: Socket) => boolean = () => false): void {
    for (const socket of [...this.#admitted.keys(), ...this.#waiting.keys()]) {
      if (!keep(socket)) socket.destroy();
    }
  }

  #arrive(socket: Socket): void {
    // Read now: the address is gone from the socket once it is closed.
    const address = socket.remoteAddress ?? 'unknown';
    this.#addresses.set(socket, address);
    // A reset while the socket waits would otherwise be an unhandled 'error' event; TLS reports
    // errors of its own once it has the socket.
    socket.on('error', ignore);
    socket.once('close', () => this.#release(socket));
    const { allow } = this.#options;
    if (allow === undefined) {
      this.#enter(socket, address);
      return;
    }
    allow(address).then(
      (allowed) => {
        if (socket.destroyed) return;
        if (allowed) this.#enter(socket, address);
        else this.#refuse(socket, address, 'rate_limited');
      },
      (error: unknown) => {
        this.#options.onError(error);
        this.#refuse(socket, address, 'relay_busy');
      },
    );
  }

  #enter(socket: Socket, address: string): void {
    const { slots, slotsPerAddress, queue } = this.#options;
    const held = this.#perAddress.get(address) ?? 0;
    if (held >= slotsPerAddress(address)) {
      this.#refuse(socket, address, 'address_busy');
      return;
    }
    if (this.#admitted.size < slots && this.#waiting.size === 0) {
      this.#perAddress.set(address, held + 1);
      this.#admitted.set(socket, this.#now());
      this.#dispatch(socket);
      return;
    }
    // Everyone after the queue: a newcomer never jumps it, not even into a slot freed from a
    // stale connection (that slot goes to the head of the queue).
    if (this.#waiting.size < queue) {
      this.#perAddress.set(address, held + 1);
      this.#waiting.set(socket, this.#now());
    } else {
      this.#refuse(socket, address, 'relay_busy');
    }
    this.#serveQueue();
  }

  /** Takes back stale slots for the queue's sake, and lets the queue in as far as slots allow. */
  #serveQueue(): void {
    while (this.#waiting.size > 0 && this.#admitted.size >= this.#options.slots) {
      if (!this.#evictStaleHandshake()) break;
    }
    this.#admitNext();
  }

  /** Refuses, from the head of the queue, the connections that have waited longer than allowed. */
  #refuseExpired(): void {
    const oldestAllowed = this.#now() - this.#options.maxWaitMs;
    for (const [socket, since] of this.#waiting) {
      if (since >= oldestAllowed) return;
      this.#forget(socket);
      this.#refuse(socket, this.#addresses.get(socket) ?? 'unknown', 'relay_busy');
    }
  }

  /** Frees the slot (or the place in the queue) of `socket`, once, and lets the next one in. */
  #release(socket: Socket): void {
    if (this.#forget(socket)) this.#admitNext();
  }

  /** Removes `socket` from the slots or the queue and from its address's count; false if absent. */
  #forget(socket: Socket): boolean {
    if (!this.#admitted.delete(socket) && !this.#waiting.delete(socket)) return false;
    const address = this.#addresses.get(socket) ?? 'unknown';
    const held = (this.#perAddress.get(address) ?? 1) - 1;
    if (held > 0) this.#perAddress.set(address, held);
    else this.#perAddress.delete(address);
    return true;
  }

  #admitNext(): void {
    this.#refuseExpired();
    // Deleting the entry being visited is safe while iterating a Map; nothing is re-added here.
    for (const socket of this.#waiting.keys()) {
      if (this.#admitted.size >= this.#options.slots) return;
      if (socket.destroyed) {
        this.#forget(socket);
        continue;
      }
      // From the queue to a slot: its address's count stays as it is.
      this.#waiting.delete(socket);
      this.#admitted.set(socket, this.#now());
      this.#dispatch(socket);
    }
  }

  /** Frees the oldest slot if it has been held too long (evictStaleAfterMs); true if it did. */
  #evictStaleHandshake(): boolean {
    const { evictStaleAfterMs } = this.#options;
    if (evictStaleAfterMs === undefined) return false;
    const oldest = this.#admitted.entries().next().value;
    if (oldest === undefined || this.#now() - oldest[1] <= evictStaleAfterMs) return false;
    this.#forget(oldest[0]);
    oldest[0].destroy();
    return true;
  }

  #refuse(socket: Socket, address: string, reason: GateRefusal): void {
    socket.destroy();
    this.#options.onRefused(address, reason);
  }
}

/**
 * The TCP socket under a server-side TLS socket. Node keeps it as `_parent` (lib/_tls_wrap.js);
 * should that ever change, the TLS socket itself is the best key left.
 */
export function tcpSocketOf(socket: TLSSocket): Socket {
  return (socket as TLSSocket & { _parent?: Socket })._parent ?? socket;
}

function ignore(): void {}
