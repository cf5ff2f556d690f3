/**
 * Every file agent.yaml names is read before the agent connects anywhere: a missing API
 * certificate, key or user credential, or a broker's CA or password file, makes `dmz-agent run`
 * exit 1 naming the key, and neither the relay nor a broker ever sees a connection from it.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runAgentCli } from '../../../agents/cli.ts';
import { createAgentPlant, type AgentPlant } from '../../support/agent-plant.ts';
import { captureOutput } from '../../support/cli-output.ts';
import { expectNever } from '../../support/wait.ts';

/**
 * Long enough for a connection the agent began before it gave up to reach the listener (it
 * reads its credentials and connects within milliseconds of starting).
 */
const NO_CONNECTION_MS = 1_000;
/** An agent refuses a missing file within a second; one that does not is stopped after this. */
const START_BOUND_MS = 10_000;

describe('dmz-agent run - files the config names are read before connecting', () => {
  let plant: AgentPlant;
  let listener: Server;
  let port: number;
  let connections = 0;
  let itCredentials: string;
  let otCredentials: string;
  let present: string;

  before(async () => {
    plant = await createAgentPlant();
    // Stands for the relay and for the brokers: it only counts who connects.
    listener = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    port = (listener.address() as { port: number }).port;
    itCredentials = await plant.enroll('it', 'historian');
    otCredentials = await plant.enroll('ot', 'press-7');
    present = join(plant.dir, 'present.pem');
    await writeFile(present, 'not read for what it holds\n', { mode: 0o600 });
  });
  after(async () => {
    await new Promise((resolve) => listener.close(resolve));
    await plant.close();
  });

  const missing = () => join(plant.dir, 'nope.pem');
  const relay = () => ({ url: `wss://127.0.0.1:${port}/v1/agent` });
  const itAgent = (fields: Record<string, unknown>) => ({
    credentials: itCredentials,
    state: join(plant.dir, 'it-state'),
    relay: relay(),
    it: {
      sinks: [{ name: 'recent', type: 'recent' }],
      consume: [{ from: 'press-7', sink: 'recent' }],
      ...fields,
    },
  });
  const bridge = (broker: Record<string, unknown>) => ({
    name: 'bridge',
    type: 'mqtt',
    broker: { url: `mqtts://127.0.0.1:${port}`, ...broker },
  });

  // [case, agent.yaml, the key the error names]
  const CASES: [string, () => Record<string, unknown>, string][] = [
    [
      'the API certificate',
      () => itAgent({ api: { tls: { cert: missing(), key: present } } }),
      'it.api.tls.cert',
    ],
    ['the API key', () => itAgent({ api: { tls: { cert: present, key: missing() } } }), 'it.api.tls.key'],
    [
      "an API user's token",
      () => itAgent({ api: { users: [{ name: 'ada', role: 'read', tokenFile: missing() }] } }),
      'it.api.users[0].tokenFile',
    ],
    [
      "the MQTT bridge's CA",
      () =>
        itAgent({
          sinks: [{ name: 'recent', type: 'recent' }, bridge({ ca: missing() })],
          consume: [{ from: 'press-7', sink: 'bridge' }],
        }),
      '/it/sinks/1/broker/ca',
    ],
    [
      "an MQTT source's password",
      () => ({
        credentials: otCredentials,
        state: join(plant.dir, 'ot-state'),
        relay: relay(),
        ot: {
          sources: [
            {
              type: 'mqtt',
              name: 'plant',
              broker: { url: `mqtt://127.0.0.1:${port}`, username: 'agent', passwordFile: missing() },
              mappings: [{ filter: 'plant/+/temp', topic: 'plant/{1}/temp' }],
            },
          ],
        },
      }),
      '/ot/sources/0/broker/passwordFile',
    ],
  ];
  for (const [name, agent, key] of CASES) {
    it(`a missing file for ${name}: exit 1 naming ${key}, and no connection`, async () => {
      connections = 0;
      const config = await plant.configFile('agent.yaml', agent());
      const run = captureOutput();
      let started = false;
      // An agent that does not refuse runs until stopped: stopped here, and the test fails.
      const code = await runAgentCli(['run', '--config', config], {}, run.output, {
        stop: AbortSignal.timeout(START_BOUND_MS),
        onStarted: () => (started = true),
      });
      assert.equal(started, false, `the agent started instead of refusing: ${run.stderr()}`);
      assert.equal(code, 1, run.stderr());
      assert.ok(run.stderr().includes(key), `stderr names ${key}: ${run.stderr()}`);
      assert.ok(run.stderr().includes(missing()), `stderr names the file: ${run.stderr()}`);
      assert.doesNotMatch(run.stderr(), /connected to the relay/);
      await expectNever(() => connections > 0, 'a connection from the agent', NO_CONNECTION_MS);
    });
  }
});
