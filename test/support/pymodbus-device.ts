/**
 * Debian's python3-pymodbus server as a real Modbus TCP device in its own process
 * (test/system/pymodbus-server.py): registers and bits from a JSON description, a log of the
 * requests it received (from its stdout), and the ways a real device fails: it stops (SIGTERM) and
 * starts again on the same port, or it hangs (SIGSTOP: the kernel still accepts connections and
 * takes requests, nothing answers) until SIGCONT. Registers change at run time through Modbus itself
 * (Write Multiple Registers), as an HMI would change them.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ModbusModule from 'modbus-serial';
import type { ModbusRequest } from './modbus-device.ts';
import { freePort } from './ports.ts';
import { spawnChild } from './child-processes.ts';

/** Debian's interpreter: its dist-packages hold python3-pymodbus (a pyenv `python3` does not). */
export const SYSTEM_PYTHON = '/usr/bin/python3';
const SCRIPT = new URL('../system/pymodbus-server.py', import.meta.url).pathname;
/** pymodbus imports in about half a second; a loaded 2-core machine takes longer. */
const START_BOUND_MS = 20_000;
const STOP_BOUND_MS = 5_000;

export interface PymodbusData {
  readonly holding?: Record<string, readonly number[]>;
  readonly input?: Record<string, readonly number[]>;
  readonly coils?: Record<string, readonly number[]>;
  readonly discrete?: Record<string, readonly number[]>;
  readonly illegal?: { readonly holding?: readonly number[] };
}

/** Undefined when pymodbus can run here; else why not (for a test's skip message). */
export function pymodbusMissing(): string | undefined {
  const probe = spawnSync(SYSTEM_PYTHON, ['-c', 'import pymodbus'], { encoding: 'utf8' });
  if (probe.error !== undefined)
    return `${SYSTEM_PYTHON} is not installed (apt-get install python3-pymodbus)`;
  if (probe.status !== 0) return 'python3-pymodbus is not installed (apt-get install python3-pymodbus)';
  return undefined;
}

export class PymodbusDevice {
  readonly host = '127.0.0.1';
  readonly port: number;
  /** Every request the server logged, in order (empty with `quiet`). */
  readonly requests: ModbusRequest[] = [];
  readonly #dataFile: string;
  readonly #quiet: boolean;
  #child: ChildProcess | undefined;
  #stderr = '';

  private constructor(port: number, dataFile: string, quiet: boolean) {
    this.port = port;
    this.#dataFile = dataFile;
    this.#quiet = quiet;
  }

  /** A server on `port` (default: a free one), listening when this resolves. */
  static async start(
    data: PymodbusData,
    options: { port?: number; quiet?: boolean } = {},
  ): Promise<PymodbusDevice> {
    const dir = mkdtempSync(join(tmpdir(), 'pymodbus-'));
    const dataFile = join(dir, 'data.json');
    writeFileSync(dataFile, JSON.stringify(data));
    const device = new PymodbusDevice(options.port ?? (await freePort()), dataFile, options.quiet ?? false);
    await device.up();
    return device;
  }

  get isUp(): boolean {
    return this.#child !== undefined;
  }

  async up(): Promise<void> {
    if (this.#child !== undefined) return;
    const args = [
      SCRIPT,
      '--port',
      String(this.port),
      '--data',
      this.#dataFile,
      ...(this.#quiet ? ['--quiet'] : []),
    ];
    const child = spawnChild(SYSTEM_PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      // pymodbus logs every refused request and closed connection; the tail says enough on failure.
      this.#stderr = (this.#stderr + text).slice(-4_000);
    });
    child.once('exit', () => {
      if (this.#child === child) this.#child = undefined;
    });
    const listening = new Promise<void>((resolve, reject) => {
      let pending = '';
      child.stdout.setEncoding('utf8').on('data', (text: string) => {
        pending += text;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          if (line.startsWith('listening ')) resolve();
          const request = /^request (\d+) (\d+) (\d+)$/.exec(line);
          if (request !== null) {
            this.requests.push({
              functionCode: Number(request[1]),
              unitId: 0,
              address: Number(request[2]),
              count: Number(request[3]),
            });
          }
        }
      });
      child.once('exit', (code) =>
        reject(new Error(`pymodbus exited (${code}) before listening: ${this.#stderr}`)),
      );
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), START_BOUND_MS);
    try {
      await listening;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the server (SIGTERM, SIGKILL past the bound): a device switched off. */
  async down(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    child.kill('SIGCONT');
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_BOUND_MS);
    await exited;
    clearTimeout(timer);
  }

  /** Freezes the server process: connections and requests are taken, none answered. */
  hang(): void {
    this.#child?.kill('SIGSTOP');
  }

  answerAgain(): void {
    this.#child?.kill('SIGCONT');
  }

  /** Writes holding registers through Modbus (function 16), as an HMI or the PLC's logic would. */
  async writeHolding(address: number, registers: readonly number[]): Promise<void> {
    const client = new ModbusModule.default();
    client.setTimeout(5_000);
    await client.connectTCP(this.host, { port: this.port });
    try {
      await client.writeRegisters(address, [...registers]);
    } finally {
      await new Promise<void>((resolve) => client.close(() => resolve()));
    }
  }

  async close(): Promise<void> {
    await this.down();
    rmSync(join(this.#dataFile, '..'), { recursive: true, force: true });
  }
}
