/**
 * One Modbus TCP connection to a device, through modbus-serial's client, with what that client
 * leaves to its caller: a deadline on the connect and on every request (the client waits forever
 * without one), timed by the source's timers; every outcome a value, never a throw or an unhandled
 * 'error' event; and a connection that is thrown away whole after a timeout or a broken answer. A
 * new connection starts a new client, whose MBAP transaction ids start again at 1, so an answer
 * that comes late on the old connection can never be taken for a later request's (the
 * "transaction id resync" after a timeout).
 */
import ModbusModule from 'modbus-serial';
import type { SourceTimers } from '../source.ts';
import type { Table } from './config.ts';

type ModbusClient = InstanceType<typeof ModbusModule.default>;

export type ReadOutcome =
  | { readonly kind: 'registers'; readonly bytes: Uint8Array }
  | { readonly kind: 'bits'; readonly bits: readonly boolean[] }
  /** `broken`: the connection was closed and must be made again (a timeout, a lost link). */
  | FailedOutcome;

export interface FailedOutcome {
  readonly kind: 'failed';
  readonly reason: string;
  readonly broken: boolean;
  /** The Modbus exception code (spec 7), when the device answered with one. */
  readonly exception?: number;
  /** A write whose deadline passed while it waited for its turn: it was never sent. */
  readonly expired?: boolean;
}

/** What a write does to a table: registers (16-bit words) from an address, or one coil. */
export type WriteRequest =
  | { readonly table: 'holding'; readonly address: number; readonly registers: readonly number[] }
  | { readonly table: 'coil'; readonly address: number; readonly state: boolean };

export type WriteResult = { readonly kind: 'written' } | FailedOutcome;

export type ConnectOutcome =
  | { readonly kind: 'connected'; readonly connection: DeviceConnection }
  | { readonly kind: 'failed'; readonly reason: string };

export interface ConnectOptions {
  readonly host: string;
  readonly port: number;
  readonly unitId: number;
  readonly localAddress: string | undefined;
  readonly timeoutMs: number;
  readonly timers: SourceTimers;
  /** Aborting it gives up a connect in flight at once (the source is stopping). */
  readonly signal?: AbortSignal;
}

/** Reasons a reading's quality is bad for: short, stable, for dashboards and tests. */
export const REASONS = {
  timeout: 'timeout',
  connectTimeout: 'connect timeout',
  connectionLost: 'connection lost',
  invalidResponse: 'invalid response',
  stopped: 'source stopped',
} as const;

/** What a failed connect says, by the socket error's code. */
const CONNECT_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  EADDRNOTAVAIL: 'local address not available',
  EADDRINUSE: 'local address in use',
  ETIMEDOUT: 'connect timeout',
};

/** Connects, within the timeout. Never throws: a failure is an outcome with its reason. */
export function connectDevice(options: ConnectOptions): Promise<ConnectOutcome> {
  const client = new ModbusModule.default();
  // Until the connection is handed over, an error is the connect's failure (its promise says so).
  client.on('error', () => undefined);
  client.setID(options.unitId);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: ConnectOutcome) => {
      if (settled) {
        // A connect that succeeds after its deadline (or the stop) is not kept open.
        if (outcome.kind === 'connected') outcome.connection.close();
        return;
      }
      settled = true;
      options.timers.clearTimeout(timer);
      options.signal?.removeEventListener('abort', abort);
      if (outcome.kind === 'failed') destroyClient(client);
      resolve(outcome);
    };
    const abort = () => finish({ kind: 'failed', reason: REASONS.stopped });
    const timer = options.timers.setTimeout(
      () => finish({ kind: 'failed', reason: REASONS.connectTimeout }),
      options.timeoutMs,
    );
    if (options.signal?.aborted === true) abort();
    options.signal?.addEventListener('abort', abort, { once: true });
    client
      .connectTCP(options.host, {
        port: options.port,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      })
      .then(
        () => finish({ kind: 'connected', connection: new DeviceConnection(client, options) }),
        (error: unknown) => finish({ kind: 'failed', reason: describeConnectError(error) }),
      );
  });
}

export class DeviceConnection {
  readonly #client: ModbusClient;
  readonly #timers: SourceTimers;
  readonly #timeoutMs: number;
  #open = true;
  /** Settles the request in flight (one at a time) when the connection breaks under it. */
  #interrupt: ((outcome: FailedOutcome) => void) | undefined;
  /** The request before the next: reads of the poller and writes of commands take turns. */
  #turn: Promise<unknown> = Promise.resolve();
  #inFlight = 0;

  constructor(client: ModbusClient, options: ConnectOptions) {
    this.#client = client;
    this.#timers = options.timers;
    this.#timeoutMs = options.timeoutMs;
    // The client reports a reset as 'error' and an orderly end as 'close' (never both, for a reset).
    const lost = () => {
      this.close();
    };
    client.on('close', lost);
    client.on('error', lost);
  }

  get isOpen(): boolean {
    return this.#open;
  }

  /**
   * Reads `count` registers or bits from `address` of `table`. One request at a time, reads and
   * writes in turn (many devices handle one transaction at a time).
   */
  read(table: Table, address: number, count: number): Promise<ReadOutcome> {
    return this.#inTurn(() => this.#request(table, address, count));
  }

  /**
   * Writes registers (function 6 for one, 16 for more: spec 6.6, 6.12) or a coil (function 5, spec
   * 6.5), in turn with the reads, each write its own request: never merged with another, so a push
   * button sees every press. `expired` is asked when the write's turn comes: a write that waited
   * past its command's deadline behind a slow read is not sent.
   */
  write(request: WriteRequest, expired: () => boolean): Promise<WriteResult> {
    return this.#inTurn(async (): Promise<WriteResult> => {
      if (expired()) return { kind: 'failed', reason: 'deadline passed', broken: false, expired: true };
      if (request.table === 'coil') await this.#client.writeCoil(request.address, request.state);
      else if (request.registers.length === 1)
        await this.#client.writeRegister(request.address, request.registers[0] ?? 0);
      else await this.#client.writeRegisters(request.address, [...request.registers]);
      return { kind: 'written' };
    });
  }

  #inTurn<T>(send: () => Promise<T>): Promise<T | FailedOutcome> {
    // With nothing in flight the request goes out now, as it did before writes took turns.
    const run = this.#inFlight === 0 ? this.#send(send) : this.#turn.then(() => this.#send(send));
    this.#inFlight++;
    this.#turn = run.finally(() => this.#inFlight--);
    return run;
  }

  /** One request on the wire with its deadline; the timer starts when it is its turn. */
  #send<T>(send: () => Promise<T>): Promise<T | FailedOutcome> {
    if (!this.#open) return Promise.resolve(lostOutcome());
    return new Promise((resolve) => {
      let settled = false;
      const finish = (outcome: T | FailedOutcome) => {
        if (settled) return;
        settled = true;
        this.#timers.clearTimeout(timer);
        this.#interrupt = undefined;
        if (isFailed(outcome) && outcome.broken) this.close();
        resolve(outcome);
      };
      this.#interrupt = finish;
      const timer = this.#timers.setTimeout(
        () => finish({ kind: 'failed', reason: REASONS.timeout, broken: true }),
        this.#timeoutMs,
      );
      send().then(finish, (error: unknown) => finish(describeRequestError(error)));
    });
  }

  /** Closes the socket at once (idempotent); a read in flight ends as "connection lost". */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#interrupt?.(lostOutcome());
    destroyClient(this.#client);
  }

  async #request(table: Table, address: number, count: number): Promise<ReadOutcome> {
    switch (table) {
      case 'holding':
        return { kind: 'registers', bytes: (await this.#client.readHoldingRegisters(address, count)).buffer };
      case 'input':
        return { kind: 'registers', bytes: (await this.#client.readInputRegisters(address, count)).buffer };
      case 'coil':
        return { kind: 'bits', bits: (await this.#client.readCoils(address, count)).data };
      case 'discrete':
        return { kind: 'bits', bits: (await this.#client.readDiscreteInputs(address, count)).data };
    }
  }
}

function isFailed(outcome: unknown): outcome is FailedOutcome {
  return (outcome as { kind?: unknown }).kind === 'failed';
}

function lostOutcome(): FailedOutcome {
  return { kind: 'failed', reason: REASONS.connectionLost, broken: true };
}

/**
 * A Modbus exception (spec 7: the device understood and refused, e.g. 2 "illegal data address")
 * leaves the connection as it was; anything else the client rejects with (the port closed under
 * it, an answer of the wrong length, unit or function) means the stream can no longer be trusted.
 */
function describeRequestError(error: unknown): FailedOutcome {
  const code = (error as { modbusCode?: unknown } | null)?.modbusCode;
  if (typeof code === 'number')
    return { kind: 'failed', reason: `Modbus exception ${code}`, broken: false, exception: code };
  const errno = (error as { errno?: unknown } | null)?.errno;
  // The client's "Port Not Open" carries ECONNREFUSED: the socket closed between two requests.
  if (errno === 'ECONNREFUSED') return lostOutcome();
  return { kind: 'failed', reason: REASONS.invalidResponse, broken: true };
}

function describeConnectError(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return CONNECT_ERRORS[code] ?? `connect failed (${code})`;
  return 'connect failed';
}

function destroyClient(client: ModbusClient): void {
  client.destroy(() => undefined);
}
