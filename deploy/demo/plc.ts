/**
 * The demo's plant: a simulated press as a real Modbus TCP server (modbus-serial's ServerTCP) on
 * loopback, which the OT agent polls as it would a PLC. Its registers move like a press's: a
 * temperature that swings, a pressure, a speed that follows its setpoint (the one register IT may
 * write, checked by the OT agent), a running coil, a stroke counter, and a vibration sensor that is
 * not wired (every read of it is refused with exception 2, so the dashboard shows a bad point).
 */
import { once } from 'node:events';
import { ServerTCP, type IServiceVector } from 'modbus-serial';

/** Holding register addresses (protocol addresses, 0-based) and the coil, as ot.yaml names them. */
export const PLC_MAP = {
  temperature: 0, // int16, 0.1 degC
  pressure: 1, // uint16, 0.01 bar
  speed: 2, // uint16, rpm: follows the setpoint
  strokes: 3, // uint16 counter
  speedSetpoint: 10, // uint16, rpm: written from IT
  vibration: 20, // not wired: exception 2
  runningCoil: 0,
} as const;

/** The setpoint the press starts with, and how far its speed moves toward it per tick. */
const START_SETPOINT = 60;
const SPEED_STEP = 2;
const TICK_MS = 200;
/** Modbus exception 2 (Modbus Application Protocol 1.1b3, section 7): an address the device has not. */
const ILLEGAL_DATA_ADDRESS = 2;

type Callback<T> = (error: Error | null, value: T) => void;

export class DemoPlc {
  readonly holding = new Uint16Array(64);
  running = true;
  readonly #server: ServerTCP;
  readonly #timer: NodeJS.Timeout;
  readonly port: number;

  private constructor(server: ServerTCP, port: number) {
    this.#server = server;
    this.port = port;
    this.holding[PLC_MAP.speedSetpoint] = START_SETPOINT;
    this.holding[PLC_MAP.speed] = START_SETPOINT;
    this.#tick();
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
  }

  static async start(port: number): Promise<DemoPlc> {
    const plc: { current?: DemoPlc } = {};
    const server = new ServerTCP(
      vector(() => plc.current),
      { host: '127.0.0.1', port },
    );
    server.on('socketError', () => undefined);
    await once(server, 'initialized');
    plc.current = new DemoPlc(server, port);
    return plc.current;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #tick(): void {
    const t = Date.now() / 1000;
    const speed = this.holding[PLC_MAP.speed] ?? 0;
    const setpoint = this.holding[PLC_MAP.speedSetpoint] ?? 0;
    const next =
      speed < setpoint ? Math.min(setpoint, speed + SPEED_STEP) : Math.max(setpoint, speed - SPEED_STEP);
    this.holding[PLC_MAP.speed] = next;
    this.running = next > 0;
    // Warmer the faster it runs, with a slow swing: what a trend should show.
    const temperature = 1500 + 4 * next + 50 * Math.sin(t / 20);
    this.holding[PLC_MAP.temperature] = Math.round(temperature);
    this.holding[PLC_MAP.pressure] = Math.round(4200 + 150 * Math.sin(t / 7) + 10 * next);
    if (this.running) this.holding[PLC_MAP.strokes] = ((this.holding[PLC_MAP.strokes] ?? 0) + 1) & 0xffff;
  }
}

function vector(plc: () => DemoPlc | undefined): IServiceVector {
  const refused = () => Object.assign(new Error('not wired'), { modbusErrorCode: ILLEGAL_DATA_ADDRESS });
  const read = (address: number, count: number, callback: Callback<number[]>) => {
    const holding = plc()?.holding;
    if (holding === undefined || (address <= PLC_MAP.vibration && PLC_MAP.vibration < address + count)) {
      callback(refused(), []);
      return;
    }
    callback(null, Array.from(holding.subarray(address, address + count)));
  };
  return {
    getMultipleHoldingRegisters: (
      address: number,
      count: number,
      _unit: number,
      callback: Callback<number[]>,
    ) => read(address, count, callback),
    getHoldingRegister: (address: number, _unit: number, callback: Callback<number>) =>
      read(address, 1, (error, values) => callback(error, values[0] ?? 0)),
    getCoil: (_address: number, _unit: number, callback: Callback<boolean>) =>
      callback(null, plc()?.running ?? false),
    setRegister: (address: number, value: number, _unit: number, callback: (error: Error | null) => void) => {
      const current = plc();
      if (current === undefined || address !== PLC_MAP.speedSetpoint) {
        callback(refused());
        return;
      }
      current.holding[address] = value;
      callback(null);
    },
  };
}
