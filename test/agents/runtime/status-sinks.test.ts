/**
 * An IT agent's MQTT bridge as its operator sees it: a `sink` line in `dmz-agent status` and the
 * dmz_agent_sink_* gauges on /metrics, from a real broker (aedes) that goes away while the agent
 * runs.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runAgentCli } from '../../../agents/cli.ts';
import type { Agent } from '../../../agents/runtime/agent.ts';
import { startAdminListener } from '../../../agents/runtime/admin-listener.ts';
import { createAgentPlant, readAgentStatus, startAgent, type AgentPlant } from '../../support/agent-plant.ts';
import { captureOutput } from '../../support/cli-output.ts';
import { TestBroker } from '../../support/mqtt-broker.ts';
import { waitFor } from '../../support/wait.ts';

const DEADLINE_MS = 30_000;

async function statusScreen(config: string): Promise<string> {
  const run = captureOutput();
  await runAgentCli(['status', '--config', config], {}, run.output);
  return run.stdout();
}

/** The value of `name{sink="bridge"...}` on /metrics, with the labels after sink. */
function sinkMetric(metrics: string, name: string): { labels: string; value: number } | undefined {
  const match = new RegExp(`^${name}\\{sink="bridge"([^}]*)\\} (\\S+)$`, 'm').exec(metrics);
  return match === null ? undefined : { labels: match[1] ?? '', value: Number(match[2]) };
}

describe('dmz-agent status and /metrics: the MQTT bridge', () => {
  let plant: AgentPlant;
  let broker: TestBroker;
  let agent: Agent | undefined;
  let admin: Awaited<ReturnType<typeof startAdminListener>> | undefined;

  before(async () => {
    plant = await createAgentPlant();
    broker = await TestBroker.start();
  });
  after(async () => {
    await admin?.close();
    await agent?.stop();
    await broker.stop();
    await plant.close();
  });

  it('shows the broker connection, what is in flight and acknowledged, and the last error', async () => {
    const state = join(plant.dir, 'it-state');
    const raw = {
      credentials: await plant.enroll('it', 'historian'),
      state,
      it: {
        sinks: [{ name: 'bridge', type: 'mqtt', broker: { url: broker.url } }],
        consume: [{ from: 'press-7', sink: 'bridge' }],
      },
    };
    const config = await plant.configFile('it.yaml', raw);
    agent = await startAgent(plant.config(raw));
    const running = agent;
    admin = await startAdminListener('127.0.0.1', 0, () => running.status());
    const metrics = async () => (await fetch(`http://127.0.0.1:${admin?.port}/metrics`)).text();

    // Two status messages acknowledged: the bridge's own `online`, and press-7's `offline`.
    await waitFor(
      async () => (await readAgentStatus(state))?.it?.sinks?.[0]?.['acknowledged'] === 2,
      'the bridge connected in status.json',
      DEADLINE_MS,
    );
    assert.match(
      await statusScreen(config),
      /^ {2}sink {5}bridge \(mqtt\): connected \(1 connections\); 0 in flight, 0 waiting, 2 acknowledged, 0 interrupted, 0 given up$/m,
    );
    const up = await metrics();
    assert.equal(sinkMetric(up, 'dmz_agent_sink_connected')?.value, 1);
    assert.equal(sinkMetric(up, 'dmz_agent_sink_in_flight')?.value, 0);
    assert.equal(sinkMetric(up, 'dmz_agent_sink_acknowledged_total')?.value, 2);
    assert.equal(sinkMetric(up, 'dmz_agent_sink_last_error_info'), undefined, 'no error yet');

    await broker.stop();
    await waitFor(
      async () => {
        const sink = (await readAgentStatus(state))?.it?.sinks?.[0];
        return sink?.['connected'] === false && sink['lastError'] !== undefined;
      },
      'the bridge disconnected, with its error, in status.json',
      DEADLINE_MS,
    );
    assert.match(
      await statusScreen(config),
      /^ {2}sink {5}bridge \(mqtt\): DISCONNECTED \(1 connections\); .*; last error: broker connection failed: .*ECONNREFUSED/m,
    );
    const down = await metrics();
    assert.equal(sinkMetric(down, 'dmz_agent_sink_connected')?.value, 0);
    const error = sinkMetric(down, 'dmz_agent_sink_last_error_info');
    assert.equal(error?.value, 1);
    assert.match(error?.labels ?? '', /^,error="broker connection failed: .*ECONNREFUSED.*"$/);
  });
});
