/**
 * A tunnel to a Modbus device with peers of other makes at both ends: Debian's mbpoll on the IT
 * side reads and writes holding registers of Debian's python3-pymodbus server on the OT side,
 * through an IT agent's entrance, the relay and an OT agent's service, the agents as
 * `dmz-agent run` processes configured by agent.yaml files, the way README sets one up. Run by
 * `npm run test:tunnel` (in .ci/run, which installs mbpoll and python3-pymodbus); skipped, saying
 * why, where either is missing.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAgentPlant, type AgentPlant } from '../support/agent-plant.ts';
import type { KillableProcess } from '../support/killable-process.ts';
import { freePort } from '../support/ports.ts';
import { pymodbusMissing, PymodbusDevice } from '../support/pymodbus-device.ts';
import { findTool, runTool } from '../support/system-tools.ts';
import { waitFor } from '../support/wait.ts';

const mbpoll = findTool('mbpoll');
const missing =
  pymodbusMissing() ??
  (mbpoll === undefined ? 'mbpoll is not installed (apt-get install mbpoll)' : undefined);
if (missing !== undefined) console.log(`# skipping the mbpoll tunnel system test: ${missing}`);

/** Agents as processes connect within seconds; a loaded machine may take longer. */
const UP_BOUND_MS = 60_000;
/** Function code 16, Write Multiple Registers (Modbus spec 6.12). */
const WRITE_MULTIPLE = 16;

/** mbpoll's `[address]: value` lines (with -0, protocol addresses), as numbers by address. */
function registersOf(stdout: string): Map<number, number> {
  return new Map(
    [...stdout.matchAll(/^\[(\d+)\]:\s+(-?\d+)/gm)].map((match) => [Number(match[1]), Number(match[2])]),
  );
}

describe('tunnel - mbpoll to python3-pymodbus through the agents and the relay', { skip: missing }, () => {
  let plant: AgentPlant;
  let device: PymodbusDevice;
  let agents: KillableProcess[];
  let port: number;
  /** mbpoll [options] host [values to write]: holding registers, protocol (0-based) addresses. */
  const poll = (options: string[], values: string[] = []) =>
    runTool(mbpoll as string, [
      '-m',
      'tcp',
      '-0',
      '-t',
      '4',
      '-p',
      String(port),
      ...options,
      '127.0.0.1',
      ...values,
    ]);

  before(async () => {
    device = await PymodbusDevice.start({ holding: { '100': [11, 22, 33] } });
    plant = await createAgentPlant({
      policy: [{ role: 'ot' }, { agent: 'scada', tunnel: ['plc-gw/modbus'] }],
    });
    port = await freePort();
    const otFile = await plant.configFile('ot.yaml', {
      credentials: await plant.enroll('ot', 'plc-gw'),
      state: join(plant.dir, 'ot-state'),
      ot: {
        sources: [{ type: 'simulator', name: 'line1', points: [{ name: 'temp', signal: 'sine' }] }],
        services: [{ name: 'modbus', target: `${device.host}:${device.port}`, allow: ['scada'] }],
      },
    });
    const itFile = await plant.configFile('it.yaml', {
      credentials: await plant.enroll('it', 'scada'),
      state: join(plant.dir, 'it-state'),
      it: { tunnels: [{ listen: `127.0.0.1:${port}`, to: 'plc-gw/modbus' }] },
    });
    agents = [await plant.agentProcess('ot', otFile), await plant.agentProcess('it', itFile)];
    for (const agent of agents) agent.start();
  });
  after(async () => {
    await Promise.all(agents.map((agent) => agent.stop()));
    await plant.close();
    await device.close();
  });

  it('reads holding registers with mbpoll through the tunnel', async () => {
    const read = await waitFor(
      async () => {
        const run = await poll(['-r', '100', '-c', '3', '-1']);
        return run.status === 0 ? run : undefined;
      },
      'an mbpoll read through the tunnel',
      UP_BOUND_MS,
      250,
    );
    assert.deepEqual(
      [...registersOf(read.stdout)],
      [
        [100, 11],
        [101, 22],
        [102, 33],
      ],
    );
  });

  it('writes holding registers with mbpoll, and reads them back', async () => {
    const from = device.requests.length;
    const write = await poll(['-r', '200'], ['1111', '2222']);
    assert.equal(write.status, 0, write.stderr);
    assert.ok(
      device.requests
        .slice(from)
        .some((request) => request.functionCode === WRITE_MULTIPLE && request.address === 200),
      'pymodbus took a write of registers 200-201',
    );
    const read = await poll(['-r', '200', '-c', '2', '-1']);
    assert.deepEqual(
      [...registersOf(read.stdout)],
      [
        [200, 1111],
        [201, 2222],
      ],
    );
    // Every mbpoll run was a stream of its own, opened and closed, at the relay's audit.
    const closed = await waitFor(() => {
      const entries = plant.audit.entries.filter((entry) => entry.event === 'tunnel.closed');
      return entries.length >= 3 && entries;
    }, 'three streams audited as closed');
    assert.ok(closed.every((entry) => entry['it'] === 'scada' && entry['service'] === 'modbus'));
  });
});
