/**
 * A plant for write tests: a real relay whose policy lets IT agents command, a real Modbus device
 * (ServerTCP), an OT agent `press-7` (the real runtime) whose Modbus source has a writable point
 * of each kind, and IT links with Ed25519 keys of their own, for commands as the write client
 * makes them and as a test forges them.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadCredentials } from '../../../../agents/credentials.ts';
import { WriteClient } from '../../../../agents/it/write-client.ts';
import { loadWriteKey, type WriteKey } from '../../../../agents/it/write-key.ts';
import { RelayLink } from '../../../../agents/link/relay-link.ts';
import type { Agent } from '../../../../agents/runtime/agent.ts';
import {
  COMMAND_TYPE,
  newNonce,
  signCommand,
  type SigningKey,
  type WriteClaims,
} from '../../../../agents/ot/writes/command.ts';
import { jwkThumbprint, parsePublicKey, type PublicJwk } from '../../../../agents/ot/writes/keys.ts';
import { AUDIT_FILE } from '../../../../agents/ot/writes/audit-log.ts';
import { writesDir } from '../../../../agents/ot/writes/write-window.ts';
import type { WritablePoint } from '../../../../agents/ot/writes/config.ts';
import { WriteService } from '../../../../agents/ot/writes/write-service.ts';
import { createAgentPlant, startAgent, type AgentPlant } from '../../../support/agent-plant.ts';
import { ModbusTestDevice, type ModbusRequest } from '../../../support/modbus-device.ts';
import { AGENT, startModbusSource, type SourceUnderTest } from '../sources/modbus/modbus-fixture.ts';

export const OT = 'press-7';
export const topic = (point: string) => `${OT}/line1/${point}`;

/** Register and coil addresses of the device's points. */
export const ADDRESS = { setpoint: 10, speed: 11, windowed: 30, locked: 40, flow: 60, start: 5 } as const;

/** Modbus functions that change a device (spec 6.5, 6.6, 6.11, 6.12). */
const WRITE_FUNCTIONS = new Set([5, 6, 15, 16]);

export interface TestKey extends SigningKey {
  readonly jwk: PublicJwk;
}

export function makeKey(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = parsePublicKey(publicKey.export({ format: 'pem', type: 'spki' }) as string);
  return { privateKey, jwk, kid: jwkThumbprint(jwk) };
}

export interface ItSide {
  readonly name: string;
  readonly link: RelayLink;
  /** The real write client, signing with `key`. */
  readonly client: WriteClient;
  /** A session with the OT agent, for raw requests. */
  session(): Promise<number>;
}

export interface WritePlant {
  readonly plant: AgentPlant;
  readonly device: ModbusTestDevice;
  readonly otState: string;
  /** The OT agent's agent.yaml, for the `dmz-agent writes` commands. */
  readonly otConfigFile: string;
  /** The state directory of IT agent hmi-3, whose own write key (made there) the OT agent pins. */
  readonly hmi3State: string;
  readonly keys: { readonly hmi1: TestKey; readonly hmi2: TestKey; readonly stranger: TestKey };
  startOt(): Promise<Agent>;
  connectIt(name: string, key: TestKey): Promise<ItSide>;
  /** Device write requests (functions 5, 6, 15, 16) since request index `from`. */
  writesSince(from: number): ModbusRequest[];
  auditEntries(): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

/** The OT agent's write config: what each case of the table writes to. */
function writesConfig(keys: Omit<WritePlant['keys'], 'agent'>, agentKey: WriteKey) {
  return {
    points: [
      {
        point: 'line1/setpoint',
        type: 'number',
        min: 0,
        max: 120,
        writers: ['hmi-1', 'hmi-3'],
        signedBy: [
          { agent: 'hmi-1', jwk: keys.hmi1.jwk },
          { agent: 'hmi-3', pem: agentKey.publicPem },
        ],
      },
      { point: 'line1/flow', type: 'number', min: -1000, max: 1000, writers: ['hmi-1'] },
      { point: 'line1/start', type: 'boolean', writers: ['hmi-1'] },
      { point: 'line1/windowed', type: 'number', min: 0, max: 100, writers: ['hmi-1'], window: true },
      { point: 'line1/locked', type: 'number', min: 0, max: 100, writers: ['hmi-1'] },
    ],
  };
}

export async function createWritePlant(): Promise<WritePlant> {
  const plant = await createAgentPlant({
    policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'], command: ['#'] }],
  });
  const device = await ModbusTestDevice.start();
  // The device refuses the locked point: its writes end in Modbus exception 2.
  device.illegal.holding.add(ADDRESS.locked);
  const keys = { hmi1: makeKey(), hmi2: makeKey(), stranger: makeKey() };
  const otCredentials = await plant.enroll('ot', OT);
  const otState = join(plant.dir, 'ot-state');
  const hmi3State = join(plant.dir, 'hmi-3-state');
  const agentKey = await loadWriteKey(hmi3State);
  const otRaw = {
    credentials: otCredentials,
    state: otState,
    ot: {
      sources: [
        {
          type: 'modbus',
          name: 'line1',
          devices: [
            {
              host: device.host,
              port: device.port,
              pollInterval: '500ms',
              points: [
                { name: 'setpoint', table: 'holding', address: ADDRESS.setpoint, type: 'int16' },
                { name: 'speed', table: 'holding', address: ADDRESS.speed },
                { name: 'windowed', table: 'holding', address: ADDRESS.windowed },
                { name: 'locked', table: 'holding', address: ADDRESS.locked },
                {
                  name: 'flow',
                  table: 'holding',
                  address: ADDRESS.flow,
                  type: 'int32',
                  wordOrder: 'little',
                  scale: 0.1,
                },
                { name: 'start', table: 'coil', address: ADDRESS.start },
              ],
            },
          ],
        },
      ],
      writes: writesConfig(keys, agentKey),
    },
  };
  const otConfig = plant.config(otRaw);
  const otConfigFile = await plant.configFile('ot.yaml', otRaw);
  const links: RelayLink[] = [];
  return {
    plant,
    device,
    otState,
    otConfigFile,
    hmi3State,
    keys,
    startOt: () => startAgent(otConfig),
    async connectIt(name, key) {
      const credentials = await loadCredentials(await plant.enroll('it', name));
      // The client is made once the link is: the link's events reach it through this.
      const made: { client?: WriteClient } = {};
      let session: { id: Promise<number> } | undefined;
      const link = await RelayLink.connect(
        {
          url: plant.url,
          keyPem: credentials.keyPem,
          certPem: credentials.certPem,
          caPem: credentials.caPem,
        },
        {
          sessionClosed: (closed) => {
            made.client?.sessionClosed(closed.session);
            // The raw requests' session is gone with it (the OT agent restarted): open another.
            const current = session;
            void current?.id.then((id) => {
              if (id === closed.session && session === current) session = undefined;
            });
          },
        },
      );
      links.push(link);
      const client = new WriteClient({ name, key, link: () => link });
      made.client = client;
      return {
        name,
        link,
        client,
        session: () =>
          (session ??= { id: link.openSession(OT, `${OT}/#`).then((opened) => opened.session) }).id,
      };
    },
    writesSince: (from) =>
      device.requestsSince(from).filter((request) => WRITE_FUNCTIONS.has(request.functionCode)),
    async auditEntries() {
      const text = await readFile(join(writesDir(otState), AUDIT_FILE), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    async close() {
      await Promise.all(links.map((link) => link.close()));
      await device.down();
      await plant.close();
    },
  };
}

/** Claims as the write client makes them, for `it` writing `value` to `point`, with `changes`. */
export function claimsFor(
  it: string,
  point: string,
  value: WriteClaims['value'],
  changes: Partial<WriteClaims> = {},
): WriteClaims {
  return {
    iss: it,
    aud: OT,
    topic: topic(point),
    value,
    deadline: Date.now() + 30_000,
    nonce: newNonce(),
    ...changes,
  };
}

export const signed = (claims: WriteClaims, key: SigningKey) => signCommand(claims, key);

/** RFC 7515 Appendix A.5: an unsecured command, as a relay without any IT key could make one. */
export function unsigned(claims: WriteClaims): Uint8Array {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return new TextEncoder().encode(`${part({ alg: 'none', typ: COMMAND_TYPE })}.${part(claims)}.`);
}

/** A signed command whose claims were changed afterwards (the signature is the original's). */
export async function tampered(
  claims: WriteClaims,
  key: SigningKey,
  changes: Partial<WriteClaims>,
): Promise<Uint8Array> {
  const [header, , signature] = Buffer.from(await signCommand(claims, key))
    .toString('utf8')
    .split('.');
  const forged = Buffer.from(JSON.stringify({ ...claims, ...changes })).toString('base64url');
  return new TextEncoder().encode(`${header}.${forged}.${signature}`);
}

/** The request's outcome: 'done', or the code it was refused with. */
export async function outcomeOf(request: Promise<Uint8Array>): Promise<string> {
  try {
    const payload = await request;
    return (JSON.parse(Buffer.from(payload).toString('utf8')) as { status: string }).status;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

/** The point of an in-process write service: `plc/setpoint`, holding register SETPOINT. */
export const SETPOINT = 10;
export const SETPOINT_TOPIC = `${AGENT}/plc/setpoint`;

export interface InProcessWrites {
  readonly device: ModbusTestDevice;
  readonly run: SourceUnderTest;
  readonly state: string;
  readonly service: WriteService;
  /** Answers `payload` as a request of hmi-1's session to the setpoint. */
  request(id: number, payload: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

/**
 * The OT agent's write service alone, in-process, over a real Modbus source and device: for
 * what the relay has no part in. `prepare` runs on the state directory before the service opens.
 */
export async function startInProcessWrites(
  point: Partial<WritablePoint>,
  prepare: (state: string) => Promise<void> = () => Promise.resolve(),
): Promise<InProcessWrites> {
  const device = await ModbusTestDevice.start();
  const state = await mkdtemp(join(tmpdir(), 'dmz-writes-'));
  const run = startModbusSource(
    [
      {
        host: device.host,
        port: device.port,
        pollInterval: '10s',
        points: [{ name: 'setpoint', table: 'holding', address: SETPOINT }],
      },
    ],
    true,
  );
  await prepare(state);
  const service = await WriteService.open({
    agentName: AGENT,
    state,
    settings: {
      maxWindowMs: 3600_000,
      points: [
        {
          point: 'plc/setpoint',
          type: 'number',
          min: 0,
          max: 1000,
          values: undefined,
          writers: ['hmi-1'],
          signedBy: [],
          window: false,
          ...point,
        },
      ],
    },
    sources: [run.source],
    logger: pino({ level: 'silent' }),
  });
  return {
    device,
    run,
    state,
    service,
    request: (id, payload) =>
      service.handle(
        { type: 'request', session: 1, id, topic: SETPOINT_TOPIC, timeoutMs: 30_000, payload },
        'hmi-1',
      ),
    async close() {
      await service.close();
      await run.stop();
      await device.down();
      await rm(state, { recursive: true, force: true });
    },
  };
}
