/**
 * The lab's configuration files, as an operator writes them for these hosts: the relay's
 * relay.yaml (its two ports on every address, enrollment in `auto` mode, a policy that lets the
 * historian read the press and write one point), the OT agent's (a Modbus source on the PLC, that
 * one point writable by the historian, signed with the historian's pinned write key) and the IT
 * agent's (a JSON Lines sink, and the local API for the IT network over TLS with a bearer token).
 */
import type { LabApi } from './it-api.ts';
import { LAB_PORTS } from './ports.ts';
import { IT_HOST, OT_HOST, relayLegFor, type LabHost } from './zones.ts';

export const TRUST_DOMAIN = 'lab.plant';
export const OT_AGENT = 'press-7';
export const IT_AGENT = 'historian';
/**
 * The PLC's registers: values no default or zeroed register has, so that finding them in the IT
 * sink proves they came from this device, through both agents and the relay.
 */
export const PLC_REGISTERS = {
  speed: { address: 100, value: 4242 },
  pressure: { address: 101, value: 1717 },
};
export const PLC_TOPICS = {
  speed: `${OT_AGENT}/plc/speed`,
  pressure: `${OT_AGENT}/plc/pressure`,
} as const;

/** The IT agent's public write key, as `dmz-agent writes key --json` prints it. */
export interface WriteKey {
  readonly agent: string;
  readonly jwk: Record<string, unknown>;
}

/** An agent's `relay:` section: the relay's address as the agent's host reaches it. */
function relayFor(host: LabHost): Record<string, unknown> {
  return { url: `wss://${relayLegFor(host).address}:${LAB_PORTS.agent}/v1/agent`, reconnectCap: '2s' };
}

export function relayConfig(): Record<string, unknown> {
  return {
    trustDomain: TRUST_DOMAIN,
    state: './state',
    listen: {
      agents: { host: '0.0.0.0', port: LAB_PORTS.agent },
      enrollment: { host: '0.0.0.0', port: LAB_PORTS.enrollment, mode: 'auto' },
      admin: { host: '127.0.0.1', port: LAB_PORTS.admin },
    },
    log: { level: 'info', audit: './audit.log' },
    policy: [{ role: 'ot' }, { agent: IT_AGENT, subscribe: [`${OT_AGENT}/#`], command: [PLC_TOPICS.speed] }],
  };
}

/** The pymodbus server's registers (test/system/pymodbus-server.py's data file). */
export function plcData(): Record<string, unknown> {
  return {
    holding: Object.fromEntries(
      Object.values(PLC_REGISTERS).map(({ address, value }) => [String(address), [value]]),
    ),
  };
}

export function otAgentConfig(writeKey: WriteKey): Record<string, unknown> {
  return {
    credentials: './credentials',
    state: './state',
    relay: relayFor(OT_HOST),
    ot: {
      writes: {
        points: [
          {
            point: 'plc/speed',
            type: 'number',
            min: 0,
            max: 65_535,
            writers: [IT_AGENT],
            signedBy: [{ agent: writeKey.agent, jwk: writeKey.jwk }],
          },
        ],
      },
      sources: [
        {
          type: 'modbus',
          name: 'plc',
          devices: [
            {
              name: 'press',
              host: OT_HOST.address,
              port: LAB_PORTS.modbus,
              pollInterval: '200ms',
              heartbeat: '2s',
              points: Object.entries(PLC_REGISTERS).map(([name, { address }]) => ({
                name,
                table: 'holding',
                address,
                type: 'uint16',
              })),
            },
          ],
        },
      ],
    },
  };
}

export function itAgentConfig(api: LabApi): Record<string, unknown> {
  return {
    credentials: './credentials',
    state: './state',
    relay: relayFor(IT_HOST),
    it: {
      sinks: [
        { name: 'files', type: 'jsonl', dir: './sink' },
        { name: 'recent', type: 'recent' },
      ],
      consume: [
        { name: 'to-files', from: OT_AGENT, sink: 'files' },
        { name: 'to-api', from: OT_AGENT, sink: 'recent' },
      ],
      // Off loopback, so for the IT network: TLS and a bearer token, as the agent insists.
      api: {
        listen: { host: '0.0.0.0', port: LAB_PORTS.api },
        tls: { cert: api.certFile, key: api.keyFile },
        auth: { bearerTokenFile: api.tokenFile },
        writable: [{ filter: PLC_TOPICS.speed, type: 'number' }],
      },
    },
  };
}
