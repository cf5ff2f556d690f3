/**
 * The configuration files the demo writes into its directory, as an operator would write them:
 * relay.yaml for the relay, ot.yaml for the press's OT agent (the Modbus PLC and a simulator, one
 * writable setpoint), it.yaml for the historian's IT agent (a JSON Lines file sink, the recent-values
 * store and its API with the dashboard, whose one user may write the setpoint). README points to
 * them as working examples.
 */
import { stringify } from 'yaml';
import { PLC_MAP } from './plc.ts';

export const OT_AGENT = 'press-7';
export const IT_AGENT = 'historian';
export const SETPOINT_TOPIC = `${OT_AGENT}/plc/speed-setpoint`;
/**
 * The dashboard's user: role write, since the API takes a write only from a named user of that
 * role. Its password hash is this file, relative to the demo's directory (as it.yaml names it).
 */
export const OPERATOR = { name: 'operator', passwordHashFile: 'api-users/operator.scrypt' } as const;

export interface DemoPorts {
  readonly agents: number;
  readonly enrollment: number;
  readonly admin: number;
  readonly plc: number;
  readonly api: number;
}

const HEADER = '# Written by npm run demo: a working example, on loopback.\n';

export function relayYaml(ports: DemoPorts): string {
  return (
    HEADER +
    stringify({
      trustDomain: 'demo.plant',
      state: './state',
      listen: {
        agents: { host: '127.0.0.1', port: ports.agents },
        enrollment: { host: '127.0.0.1', port: ports.enrollment, mode: 'auto' },
        admin: { host: '127.0.0.1', port: ports.admin },
      },
      log: { level: 'info', audit: './audit.log' },
      policy: [{ role: 'ot' }, { agent: IT_AGENT, subscribe: [`${OT_AGENT}/#`], command: [SETPOINT_TOPIC] }],
    })
  );
}

function relaySection(ports: DemoPorts) {
  return { url: `wss://127.0.0.1:${ports.agents}/v1/agent`, reconnectBase: '200ms', reconnectCap: '5s' };
}

/** `historianKeyPem`: the historian's public write key, pinned so that only it can sign a write. */
export function otYaml(ports: DemoPorts, historianKeyPem: string): string {
  const register = (name: string, address: number, extra: Record<string, unknown> = {}) => ({
    name,
    table: 'holding',
    address,
    type: 'uint16',
    ...extra,
  });
  return (
    HEADER +
    stringify({
      credentials: './agents/press-7',
      state: './state-press-7',
      relay: relaySection(ports),
      ot: {
        log: { maxBytes: '64MiB', maxAge: '1d', segmentBytes: '4MiB' },
        sources: [
          {
            type: 'modbus',
            name: 'plc',
            devices: [
              {
                name: 'press',
                host: '127.0.0.1',
                port: ports.plc,
                pollInterval: '500ms',
                heartbeat: '5s',
                // The unwired vibration sensor must not share a request with the good registers.
                maxGap: 0,
                points: [
                  register('temperature', PLC_MAP.temperature, { type: 'int16', scale: 0.1, unit: 'degC' }),
                  register('pressure', PLC_MAP.pressure, { scale: 0.01, unit: 'bar' }),
                  register('speed', PLC_MAP.speed, { unit: 'rpm' }),
                  register('strokes', PLC_MAP.strokes),
                  register('speed-setpoint', PLC_MAP.speedSetpoint, { unit: 'rpm' }),
                  register('vibration', PLC_MAP.vibration, { scale: 0.01, unit: 'mm/s' }),
                  { name: 'running', table: 'coil', address: PLC_MAP.runningCoil },
                ],
              },
            ],
          },
          {
            type: 'simulator',
            name: 'line1',
            interval: '1s',
            points: [
              { name: 'oven-temp', signal: 'sine', period: '60s', min: 180, max: 220, unit: 'degC' },
              { name: 'level', signal: 'randomWalk', min: 0, max: 100, step: 2, seed: 7, unit: '%' },
              { name: 'mode', signal: 'step', values: ['heat', 'hold', 'cool'], period: '20s' },
            ],
          },
        ],
        writes: {
          points: [
            {
              point: 'plc/speed-setpoint',
              type: 'number',
              min: 0,
              max: 120,
              writers: [IT_AGENT],
              signedBy: [{ agent: IT_AGENT, pem: historianKeyPem }],
            },
          ],
        },
      },
    })
  );
}

export function itYaml(ports: DemoPorts): string {
  return (
    HEADER +
    stringify({
      credentials: './agents/historian',
      state: './state-historian',
      relay: relaySection(ports),
      it: {
        sinks: [
          { name: 'files', type: 'jsonl', dir: './points' },
          { name: 'recent', type: 'recent', historyPerTopic: 600, maxAge: '1h' },
        ],
        consume: [
          { name: 'press-7-files', from: OT_AGENT, sink: 'files' },
          { name: 'press-7-screen', from: OT_AGENT, sink: 'recent' },
        ],
        api: {
          listen: { host: '127.0.0.1', port: ports.api },
          units: [
            { filter: `${OT_AGENT}/plc/temperature`, unit: 'degC' },
            { filter: `${OT_AGENT}/plc/pressure`, unit: 'bar' },
            { filter: `${OT_AGENT}/plc/speed`, unit: 'rpm' },
            { filter: SETPOINT_TOPIC, unit: 'rpm' },
            { filter: `${OT_AGENT}/plc/vibration`, unit: 'mm/s' },
            { filter: `${OT_AGENT}/line1/oven-temp`, unit: 'degC' },
            { filter: `${OT_AGENT}/line1/level`, unit: '%' },
          ],
          users: [{ name: OPERATOR.name, role: 'write', passwordHashFile: `./${OPERATOR.passwordHashFile}` }],
          writable: [{ filter: SETPOINT_TOPIC, type: 'number' }],
        },
      },
    })
  );
}
