import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runAgentCli } from '../../../agents/cli.ts';
import { openStreamLog } from '../../../agents/ot/log/stream-log.ts';
import type { AgentStatus } from '../../../agents/runtime/status.ts';
import { createAgentPlant, readAgentStatus, type AgentPlant } from '../../support/agent-plant.ts';
import { captureOutput } from '../../support/cli-output.ts';
import type { KillableProcess } from '../../support/killable-process.ts';
import { waitFor } from '../../support/wait.ts';

const TOPICS = ['temp', 'count', 'running'].map((point) => `press-7/line1/${point}`);
/** agent.yaml's log defaults (config.ts), so that reopening the log changes nothing in it. */
const LOG_DEFAULTS = { maxBytes: 1024 ** 3, maxAgeMs: 7 * 86_400_000, segmentBytes: 64 * 1024 ** 2 };

/** `dmz-agent status` in this process, as the command line runs it. */
async function agentStatus(config: string, json = false): Promise<{ code: number; stdout: string }> {
  const run = captureOutput();
  const code = await runAgentCli(['status', '--config', config, ...(json ? ['--json'] : [])], {}, run.output);
  return { code, stdout: run.stdout() };
}

/** What the running agent's admin listener answers. */
async function admin(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
}

function pointsLoggedMetric(metrics: string): number {
  const value = /^dmz_agent_points_logged_total (\d+)$/m.exec(metrics)?.[1];
  assert.ok(value !== undefined, 'dmz_agent_points_logged_total in /metrics');
  return Number(value);
}

describe('dmz-agent run: the process, its status, its admin port and SIGTERM', () => {
  let plant: AgentPlant;
  let agent: KillableProcess | undefined;

  before(async () => {
    plant = await createAgentPlant();
  });
  after(async () => {
    agent?.killNow();
    await plant.close();
  });

  it('serves /healthz and /metrics, shows its status, and on SIGTERM exits 0 with every logged point durable', async () => {
    const state = join(plant.dir, 'ot-state');
    const config = await plant.configFile('ot.yaml', {
      credentials: await plant.enroll('ot', 'press-7'),
      state,
      admin: { port: 0 },
      ot: {
        sources: [
          {
            type: 'simulator',
            name: 'line1',
            interval: '1ms',
            batch: 10,
            points: [
              { name: 'temp', signal: 'sine', period: '1s', min: 20, max: 80 },
              { name: 'count', signal: 'ramp', min: 0, max: 1_000_000, step: 1 },
              { name: 'running', signal: 'toggle', period: '50ms' },
            ],
          },
        ],
      },
    });
    agent = await plant.agentProcess('ot', config);
    const incarnation = agent.start();

    // The admin listener's port (configured 0) is in the "agent running" line.
    const running = await waitFor(
      async () =>
        (await readFile(incarnation.stderrFile, 'utf8'))
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line) as { msg?: string; adminPort?: number })
          .find((line) => line.msg === 'agent running'),
      'the agent running',
      20_000,
      50,
    );
    const port = running.adminPort;
    assert.ok(typeof port === 'number' && port > 0, 'the admin port is announced');

    await waitFor(
      async () => (await admin(port, '/healthz')).status === 200,
      '/healthz 200 once connected',
      10_000,
    );
    const health = JSON.parse((await admin(port, '/healthz')).body) as { status: string; name: string };
    assert.deepEqual([health.status, health.name], ['ok', 'press-7']);
    await waitFor(
      async () => pointsLoggedMetric((await admin(port, '/metrics')).body) > 0,
      'points logged in /metrics',
    );

    // The status screen, while it runs: exit 0, a line per stream with its last sequence.
    await waitFor(
      async () => (await readAgentStatus(state))?.ot?.streamCount === TOPICS.length,
      'status.json',
    );
    const shown = await agentStatus(config);
    assert.equal(shown.code, 0, shown.stdout);
    assert.match(shown.stdout, /^press-7 \(ot\) running, pid \d+/);
    for (const topic of TOPICS) assert.match(shown.stdout, new RegExp(`^ +${topic} +\\d+$`, 'm'), topic);

    // The relay goes away and comes back: /healthz follows.
    await plant.stopRelay();
    await waitFor(
      async () => (await admin(port, '/healthz')).status === 503,
      '/healthz 503 without the relay',
    );
    await plant.startRelay();
    await waitFor(async () => (await admin(port, '/healthz')).status === 200, '/healthz 200 again', 10_000);

    // SIGTERM while the source runs: everything it reported as logged must be on disk.
    const reported = pointsLoggedMetric((await admin(port, '/metrics')).body);
    const exit = await agent.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, agent.stderrTail());
    assert.ok(agent.stderrIncludes('stopped; everything durable is on disk'), agent.stderrTail());

    const last = (await readAgentStatus(state)) as AgentStatus;
    const pointsLogged = last.ot?.pointsLogged ?? 0;
    assert.ok(pointsLogged >= reported, `${pointsLogged} logged at the end, ${reported} reported before`);
    const log = await openStreamLog({ dir: join(state, 'log'), ...LOG_DEFAULTS });
    try {
      let durable = 0;
      for (const { topic, lastSeq } of last.ot?.streams ?? []) {
        assert.equal(log.lastSeq(topic), lastSeq, `${topic}: the last sequence it reported is durable`);
        for (let next = 1; next <= lastSeq;) {
          const read = await log.read(topic, next, 4096);
          assert.equal(read.gap, undefined);
          durable += read.records.length;
          next = read.nextSeq;
        }
      }
      assert.equal(durable, pointsLogged, 'every point it reported as logged is in the reopened log');
    } finally {
      await log.close();
    }

    // Stopped: the status screen says so (exit 1), and --json is one document.
    const stopped = await agentStatus(config);
    assert.equal(stopped.code, 1, stopped.stdout);
    assert.match(stopped.stdout, /^press-7 \(ot\) NOT RUNNING; last status /);
    const json = await agentStatus(config, true);
    assert.equal(json.code, 1);
    const parsed = JSON.parse(json.stdout) as { running: boolean; ot: { pointsLogged: number } };
    assert.equal(parsed.running, false);
    assert.equal(parsed.ot.pointsLogged, pointsLogged);
  });
});
