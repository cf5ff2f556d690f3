/**
 * A real Modbus TCP device for tests: modbus-serial's ServerTCP on a loopback port, over register
 * and bit tables the test sets, that logs every request it receives (function code, address,
 * quantity), takes writes of holding registers and coils (functions 5, 6, 15, 16) into the same
 * tables, can refuse addresses with exception 2 ("illegal data address"), can hang (it accepts
 * connections and requests and never answers) or be slow (it holds requests until released), and
 * can go down and come back on the same port.
 */
import { once } from 'node:events';
import type { Server, Socket } from 'node:net';
import { ServerTCP, type IServiceVector } from 'modbus-serial';
import { freePort } from './ports.ts';

export interface ModbusRequest {
  readonly functionCode: number;
  readonly unitId: number;
  readonly address: number;
  readonly count: number;
}

type Table = 'holding' | 'input' | 'coil' | 'discrete';
type Callback<T> = (error: Error | null, value: T) => void;
type Done = (error: Error | null) => void;

/** Modbus exception 2 (spec 7): the address is not one the device has. */
const ILLEGAL_ADDRESS = 2;
/** A Modbus TCP request's header (MBAP, 7 bytes) and the read PDU after it (5 bytes). */
const MBAP_BYTES = 7;

export class ModbusTestDevice {
  readonly host = '127.0.0.1';
  readonly port: number;
  readonly holding = new Uint16Array(65_536);
  readonly input = new Uint16Array(65_536);
  readonly coils = new Uint8Array(65_536);
  readonly discrete = new Uint8Array(65_536);
  /** Addresses that answer with exception 2, per table. */
  readonly illegal: Record<Table, Set<number>> = {
    holding: new Set(),
    input: new Set(),
    coil: new Set(),
    discrete: new Set(),
  };
  /** Every request received, in order (also those it did not answer). */
  readonly requests: ModbusRequest[] = [];
  /** The address of every client that connected, in order. */
  readonly peers: string[] = [];
  /** While true, the device takes requests and answers none. */
  hung = false;
  /** Requests taken while held, answered (in order) when released: a slow device. */
  #held: (() => void)[] | undefined;
  #server: ServerTCP | undefined;

  private constructor(port: number) {
    this.port = port;
  }

  /** A device listening on `port` (default: a free one). */
  static async start(port?: number): Promise<ModbusTestDevice> {
    const device = new ModbusTestDevice(port ?? (await freePort()));
    await device.up();
    return device;
  }

  get isUp(): boolean {
    return this.#server !== undefined;
  }

  /** Starts listening (again) on the same port. */
  async up(): Promise<void> {
    if (this.#server !== undefined) return;
    const server = new ServerTCP(this.#vector(), { host: this.host, port: this.port });
    // ServerTCP keeps its net.Server private; the request log reads the bytes next to it.
    const listener = (server as unknown as { _server: Server })._server;
    listener.on('connection', (socket: Socket) => {
      this.peers.push(socket.remoteAddress ?? '');
      this.#logRequests(socket);
    });
    server.on('socketError', () => undefined);
    await once(server, 'initialized');
    this.#server = server;
  }

  /** Stops listening and drops every connection, as a device that loses power. */
  async down(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Requests received since `from` (an index into `requests`). */
  requestsSince(from: number): ModbusRequest[] {
    return this.requests.slice(from);
  }

  /** Holds every request from now on; the function returned answers them and ends the hold. */
  hold(): () => void {
    const held: (() => void)[] = [];
    this.#held = held;
    return () => {
      if (this.#held === held) this.#held = undefined;
      for (const answer of held) answer();
    };
  }

  setHolding(address: number, registers: readonly number[]): void {
    this.holding.set(registers, address);
  }

  #logRequests(socket: Socket): void {
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 6) {
        const frameBytes = 6 + pending.readUInt16BE(4);
        if (pending.length < frameBytes) return;
        const frame = pending.subarray(0, frameBytes);
        pending = pending.subarray(frameBytes);
        if (frame.length < MBAP_BYTES + 5) continue;
        this.requests.push({
          unitId: frame.readUInt8(6),
          functionCode: frame.readUInt8(7),
          address: frame.readUInt16BE(8),
          count: frame.readUInt16BE(10),
        });
      }
    });
  }

  #vector(): IServiceVector {
    const registers =
      (table: 'holding' | 'input') => (address: number, count: number, callback: Callback<number[]>) =>
        this.#answer(() => {
          if (this.#refuses(table, address, count)) callback(illegalAddress(), []);
          else callback(null, Array.from(this[table].subarray(address, address + count)));
        });
    const bit =
      (table: 'coil' | 'discrete', store: Uint8Array) => (address: number, callback: Callback<boolean>) =>
        this.#answer(() => {
          if (this.illegal[table].has(address)) callback(illegalAddress(), false);
          else callback(null, store[address] === 1);
        });
    const holding = registers('holding');
    const input = registers('input');
    return {
      getMultipleHoldingRegisters: (
        address: number,
        count: number,
        _unit: number,
        callback: Callback<number[]>,
      ) => holding(address, count, callback),
      getMultipleInputRegisters: (
        address: number,
        count: number,
        _unit: number,
        callback: Callback<number[]>,
      ) => input(address, count, callback),
      // ServerTCP asks for a single register this way (a request of length 1).
      getHoldingRegister: (address: number, _unit: number, callback: Callback<number>) =>
        holding(address, 1, (error, values) => callback(error, values[0] ?? 0)),
      getInputRegister: (address: number, _unit: number, callback: Callback<number>) =>
        input(address, 1, (error, values) => callback(error, values[0] ?? 0)),
      getCoil: (address: number, _unit: number, callback: Callback<boolean>) =>
        bit('coil', this.coils)(address, callback),
      getDiscreteInput: (address: number, _unit: number, callback: Callback<boolean>) =>
        bit('discrete', this.discrete)(address, callback),
      setRegister: (address: number, value: number, _unit: number, done: Done) =>
        this.#write('holding', address, 1, done, () => (this.holding[address] = value)),
      setRegisterArray: (address: number, values: number[], _unit: number, done: Done) =>
        this.#write('holding', address, values.length, done, () => this.holding.set(values, address)),
      setCoil: (address: number, value: boolean, _unit: number, done: Done) =>
        this.#write('coil', address, 1, done, () => (this.coils[address] = value ? 1 : 0)),
    };
  }

  /** A write that changes the table only when the device takes it (not hung, no refused address). */
  #write(table: Table, address: number, count: number, done: Done, apply: () => unknown): void {
    this.#answer(() => {
      if (this.#refuses(table, address, count)) {
        done(illegalAddress());
        return;
      }
      apply();
      done(null);
    });
  }

  /** Answers now, later (held), or never (hung). */
  #answer(answer: () => void): void {
    if (this.hung) return;
    if (this.#held === undefined) answer();
    else this.#held.push(answer);
  }

  #refuses(table: Table, address: number, count: number): boolean {
    for (let offset = 0; offset < count; offset++) {
      if (this.illegal[table].has(address + offset)) return true;
    }
    return false;
  }
}

function illegalAddress(): Error {
  return Object.assign(new Error('illegal data address'), { modbusErrorCode: ILLEGAL_ADDRESS });
}
