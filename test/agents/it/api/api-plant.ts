/**
 * A plant for the IT API tests: the real relay, an OT agent polling a real Modbus TCP device
 * (modbus-serial's ServerTCP) with one point the device refuses (exception 2: quality bad), and an
 * IT agent with a recent-values sink and the API, all in this process (test/support/agent-plant.ts).
 * `request` speaks HTTP(S) with node:http, so a test can set any header and send any bytes.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { runAgentCli } from '../../../../agents/cli.ts';
import type { Agent } from '../../../../agents/runtime/agent.ts';
import { createAgentPlant, startAgent, type AgentPlant } from '../../../support/agent-plant.ts';
import { captureOutput } from '../../../support/cli-output.ts';
import { ModbusTestDevice } from '../../../support/modbus-device.ts';
import { waitFor } from '../../../support/wait.ts';

export const OT = 'press-7';
export const IT = 'historian';
export const TEMP = `${OT}/plc/temp`;
export const SPEED = `${OT}/plc/speed`;
export const BROKEN = `${OT}/plc/broken`;
/** The holding registers the points read; BROKEN's address answers exception 2. */
export const REGISTERS = { temp: 0, speed: 1, broken: 100 } as const;

export interface ApiPlant {
  readonly plant: AgentPlant;
  readonly device: ModbusTestDevice;
  readonly ot: Agent;
  /** Starts an IT agent with the recent sink and `api` merged into its it.api section. */
  startIt(
    api?: Record<string, unknown>,
    extra?: { dir?: string; sink?: Record<string, unknown> },
  ): Promise<Agent>;
  close(): Promise<void>;
}

/**
 * `writes`: the OT agent's ot.writes section (agents/ot/writes/config.ts); none by default.
 * `points`: more Modbus points of the device, after the three above.
 */
export async function createApiPlant(
  options: { writes?: Record<string, unknown>; points?: readonly Record<string, unknown>[] } = {},
): Promise<ApiPlant> {
  // The relay lets the historian command what it reads: the OT agent's own checks decide.
  const plant = await createAgentPlant({
    policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'], command: [`${OT}/#`] }],
  });
  const device = await ModbusTestDevice.start();
  device.illegal.holding.add(REGISTERS.broken);
  device.setHolding(REGISTERS.temp, [215]);
  device.setHolding(REGISTERS.speed, [60]);
  const otCredentials = await plant.enroll('ot', OT);
  const ot = await startAgent(
    plant.config({
      credentials: otCredentials,
      state: `${plant.dir}/ot-state`,
      ot: {
        sources: [
          {
            type: 'modbus',
            name: 'plc',
            devices: [
              {
                name: 'press',
                host: device.host,
                port: device.port,
                pollInterval: '100ms',
                // A point is sent at least this often unchanged: the history grows while values hold.
                heartbeat: '100ms',
                // The refused register must not share a request with the good ones.
                maxGap: 0,
                points: [
                  { name: 'temp', table: 'holding', address: REGISTERS.temp, type: 'int16', scale: 0.1 },
                  { name: 'speed', table: 'holding', address: REGISTERS.speed, type: 'uint16' },
                  { name: 'broken', table: 'holding', address: REGISTERS.broken, type: 'uint16' },
                  ...(options.points ?? []),
                ],
              },
            ],
          },
        ],
        ...(options.writes === undefined ? {} : { writes: options.writes }),
      },
    }),
  );
  const itCredentials = await plant.enroll('it', IT);
  const agents: Agent[] = [ot];
  return {
    plant,
    device,
    ot,
    async startIt(api = {}, extra = {}) {
      const it = await startAgent(
        plant.config({
          credentials: itCredentials,
          state: extra.dir ?? `${plant.dir}/it-state`,
          it: {
            sinks: [{ name: 'recent', type: 'recent', ...extra.sink }],
            consume: [{ from: OT, sink: 'recent' }],
            api: {
              listen: { host: '127.0.0.1', port: 0 },
              units: [{ filter: `${OT}/plc/temp`, unit: 'degC' }],
              ...api,
            },
          },
        }),
      );
      agents.push(it);
      return it;
    },
    async close() {
      await Promise.all(agents.map((agent) => agent.stop()));
      await device.down();
      await plant.close();
    },
  };
}

export interface ApiResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The body as JSON; a test names the shape it expects. */
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
  json<T = Record<string, unknown>>(): T;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** For https: the CA that signed the listener's certificate. */
  readonly ca?: string;
  /** For https: the name the certificate is checked against (else the Host header's). */
  readonly servername?: string;
  /** The address to send from (another of 127.0.0.0/8: another client to a per-address limit). */
  readonly localAddress?: string;
}

/** One request to `url`, the whole answer read. */
export function request(url: string, options: RequestOptions = {}): Promise<ApiResponse> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = send(
      target,
      {
        method: options.method ?? 'GET',
        headers: options.headers,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
        ...(options.servername === undefined ? {} : { servername: options.servername }),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text,
            json: () => JSON.parse(text) as never,
          });
        });
        response.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(options.body);
  });
}

/** Waits until the IT agent's API holds a value for each topic (the plant is flowing). */
export async function waitForValues(
  baseUrl: string,
  topics: readonly string[],
  headers: Record<string, string> = {},
): Promise<void> {
  await waitFor(
    async () => {
      const answer = await request(`${baseUrl}api/v1/points`, { headers });
      if (answer.status !== 200) return false;
      const held = new Set(answer.json<{ points: { topic: string }[] }>().points.map((point) => point.topic));
      return topics.every((topic) => held.has(topic));
    },
    `values for ${topics.join(', ')}`,
    30_000,
    50,
  );
}

export interface StreamEvent {
  readonly event: string;
  readonly id: string;
  readonly data: Record<string, unknown>;
}

export interface OpenStream {
  readonly status: number;
  readonly events: StreamEvent[];
  /** Settles when the server ends or cuts the stream (or close() does). */
  readonly ended: Promise<void>;
  close(): void;
}

/** A server-sent events stream, parsed as a browser would (WHATWG HTML 9.2.6), kept open. */
export function openStream(url: string, headers: Record<string, string> = {}): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const events: StreamEvent[] = [];
    const outgoing = httpRequest(new URL(url), { headers }, (response) => {
      let buffer = '';
      let fields: Record<string, string> = {};
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line === '') {
            if (fields.data !== undefined) {
              events.push({
                event: fields.event ?? 'message',
                id: fields.id ?? '',
                data: JSON.parse(fields.data) as Record<string, unknown>,
              });
            }
            fields = {};
          } else if (!line.startsWith(':')) {
            const colon = line.indexOf(':');
            fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '');
          }
        }
      });
      response.on('error', () => undefined);
      const ended = new Promise<void>((settle) => response.once('close', settle));
      resolve({ status: response.statusCode ?? 0, events, ended, close: () => outgoing.destroy() });
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** What a command of `dmz-agent` printed, and its exit status (run in-process). */
export async function runAgentCommand(
  argv: readonly string[],
): Promise<{ status: number; stdout: string; stderr: string }> {
  const captured = captureOutput();
  const status = await runAgentCli(argv, {}, captured.output);
  return { status, stdout: captured.stdout(), stderr: captured.stderr() };
}

export interface ApiUserEntry {
  readonly name: string;
  readonly role: 'read' | 'write';
  readonly passwordHashFile?: string;
  readonly tokenFile?: string;
}

/**
 * An it.api.users entry made as an operator makes one, with `dmz-agent api user add`: a password
 * hash (the password from a file, removed after) and/or a new token, under `dir`.
 */
export async function addApiUser(
  dir: string,
  name: string,
  role: 'read' | 'write',
  credentials: { readonly password?: string; readonly token?: boolean },
): Promise<ApiUserEntry> {
  const argv = ['api', 'user', 'add', name, '--role', role, '--json'];
  const passwordFile = join(dir, `${name}.password`);
  if (credentials.password !== undefined) {
    await writeFile(passwordFile, `${credentials.password}\n`, { mode: 0o600 });
    argv.push('--password-hash-file', join(dir, `${name}.scrypt`), '--password-file', passwordFile);
  }
  if (credentials.token === true) argv.push('--token-file', join(dir, `${name}.token`));
  const made = await runAgentCommand(argv);
  await rm(passwordFile, { force: true });
  if (made.status !== 0) throw new Error(`api user add ${name}: ${made.stderr}`);
  return JSON.parse(made.stdout) as ApiUserEntry;
}

/** The lines of a write audit (the IT agent's API audit or the OT agent's), parsed; none before the first. */
export async function readAudit(file: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The Authorization header of basic auth (RFC 7617) for `user` and `password`. */
export function basicAuth(user: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}
