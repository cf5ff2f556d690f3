import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runAgentCli } from '../../../../agents/cli.ts';
import type { Agent } from '../../../../agents/runtime/agent.ts';
import type { WriteResult } from '../../../../agents/it/write-client.ts';
import { AgentMetrics } from '../../../../agents/runtime/agent-metrics.ts';
import { readAgentStatus, startAgent } from '../../../support/agent-plant.ts';
import { captureOutput } from '../../../support/cli-output.ts';
import { waitFor } from '../../../support/wait.ts';
import {
  ADDRESS,
  claimsFor,
  createWritePlant,
  OT,
  outcomeOf,
  signed,
  tampered,
  topic,
  unsigned,
  type ItSide,
  type WritePlant,
} from './write-fixture.ts';

/** The registers and coil the cases write to, as the device holds them. */
function snapshot(plant: WritePlant): number[] {
  const { holding, coils } = plant.device;
  return [
    holding[ADDRESS.setpoint] ?? -1,
    holding[ADDRESS.windowed] ?? -1,
    holding[ADDRESS.locked] ?? -1,
    holding[ADDRESS.flow] ?? -1,
    holding[ADDRESS.flow + 1] ?? -1,
    holding[ADDRESS.speed] ?? -1,
    coils[ADDRESS.start] ?? -1,
  ];
}

const codeOf = (result: WriteResult) => result.code ?? result.status;

describe('writes from IT to OT: the OT agent checks every command itself', () => {
  let plant: WritePlant;
  let ot: Agent;
  let hmi1: ItSide;
  let hmi2: ItSide;

  const raw = async (side: ItSide, point: string, payload: Uint8Array) =>
    outcomeOf(side.link.request(await side.session(), topic(point), payload, 10_000));

  before(async () => {
    plant = await createWritePlant();
    plant.device.setHolding(ADDRESS.setpoint, [7]);
    plant.device.setHolding(ADDRESS.windowed, [3]);
    plant.device.setHolding(ADDRESS.speed, [1500]);
    ot = await plant.startOt();
    await waitFor(() => ot.status().relay.connected, 'OT agent connected');
    hmi1 = await plant.connectIt('hmi-1', plant.keys.hmi1);
    hmi2 = await plant.connectIt('hmi-2', plant.keys.hmi2);
  });

  after(async () => {
    await ot?.stop();
    await plant?.close();
  });

  const write = (side: () => ItSide, point: string, value: number | boolean | string) => () =>
    side()
      .client.write({ agent: OT, topic: topic(point), value })
      .then(codeOf);

  // Each refusal: its own code, and not one write request reaches the device.
  const refusals: { name: string; send: () => Promise<string>; code: string }[] = [
    {
      name: 'wrong identity (not a writer)',
      send: write(() => hmi2, 'setpoint', 42),
      code: 'AGENT_ERR_WRITE_NOT_WRITER',
    },
    { name: 'read-only point', send: write(() => hmi1, 'speed', 5), code: 'AGENT_ERR_WRITE_READ_ONLY' },
    { name: 'out of range', send: write(() => hmi1, 'setpoint', 500), code: 'AGENT_ERR_WRITE_OUT_OF_RANGE' },
    { name: 'wrong type', send: write(() => hmi1, 'setpoint', '42'), code: 'AGENT_ERR_WRITE_WRONG_TYPE' },
    {
      name: 'not a step of a scaled register',
      send: write(() => hmi1, 'flow', 12.34),
      code: 'AGENT_ERR_WRITE_OUT_OF_RANGE',
    },
    {
      name: 'expired deadline',
      send: async () =>
        raw(
          hmi1,
          'setpoint',
          await signed(claimsFor('hmi-1', 'setpoint', 42, { deadline: Date.now() - 1000 }), plant.keys.hmi1),
        ),
      code: 'AGENT_ERR_WRITE_EXPIRED',
    },
    {
      name: 'deadline too far ahead',
      send: async () =>
        raw(
          hmi1,
          'setpoint',
          await signed(
            claimsFor('hmi-1', 'setpoint', 42, { deadline: Date.now() + 600_000 }),
            plant.keys.hmi1,
          ),
        ),
      code: 'AGENT_ERR_WRITE_DEADLINE_TOO_FAR',
    },
    {
      name: 'missing signature',
      send: () => raw(hmi1, 'setpoint', unsigned(claimsFor('hmi-1', 'setpoint', 42))),
      code: 'AGENT_ERR_WRITE_SIGNATURE_MISSING',
    },
    {
      name: 'bad signature (claims changed after signing)',
      send: async () =>
        raw(
          hmi1,
          'setpoint',
          await tampered(claimsFor('hmi-1', 'setpoint', 42), plant.keys.hmi1, { value: 99 }),
        ),
      code: 'AGENT_ERR_WRITE_SIGNATURE_INVALID',
    },
    {
      name: 'signed with a key not pinned for the writer',
      send: async () =>
        raw(hmi1, 'setpoint', await signed(claimsFor('hmi-1', 'setpoint', 42), plant.keys.stranger)),
      code: 'AGENT_ERR_WRITE_KEY_NOT_PINNED',
    },
    {
      name: "signed with another writer's key",
      send: async () =>
        raw(hmi2, 'setpoint', await signed(claimsFor('hmi-1', 'setpoint', 42), plant.keys.hmi1)),
      code: 'AGENT_ERR_WRITE_NOT_WRITER',
    },
    {
      name: "an issuer other than the session's peer",
      send: async () => raw(hmi1, 'flow', await signed(claimsFor('hmi-2', 'flow', 1), plant.keys.hmi2)),
      code: 'AGENT_ERR_WRITE_ISSUER_MISMATCH',
    },
    {
      name: 'addressed to another OT agent',
      send: async () =>
        raw(hmi1, 'flow', await signed(claimsFor('hmi-1', 'flow', 1, { aud: 'press-8' }), plant.keys.hmi1)),
      code: 'AGENT_ERR_WRITE_WRONG_AUDIENCE',
    },
    {
      name: 'signed for another topic than the request',
      send: async () => raw(hmi1, 'setpoint', await signed(claimsFor('hmi-1', 'flow', 1), plant.keys.hmi1)),
      code: 'AGENT_ERR_WRITE_MALFORMED',
    },
    {
      name: 'not a command at all',
      send: () => raw(hmi1, 'setpoint', new TextEncoder().encode('{"value":42}')),
      code: 'AGENT_ERR_WRITE_MALFORMED',
    },
    {
      name: 'write window closed',
      send: write(() => hmi1, 'windowed', 50),
      code: 'AGENT_ERR_WRITE_WINDOW_CLOSED',
    },
  ];

  for (const refusal of refusals) {
    it(`refuses: ${refusal.name}, and the device is untouched`, async () => {
      const registers = snapshot(plant);
      const from = plant.device.requests.length;
      assert.equal(await refusal.send(), refusal.code);
      assert.deepEqual(plant.writesSince(from), [], 'no write request reached the device');
      assert.deepEqual(snapshot(plant), registers);
    });
  }

  it('writes an allowed, signed value to the register (function 6), and audits it', async () => {
    const from = plant.device.requests.length;
    const result = await hmi1.client.write({ agent: OT, topic: topic('setpoint'), value: 42 });
    assert.deepEqual(result, { status: 'done', code: undefined, message: 'written' });
    assert.equal(plant.device.holding[ADDRESS.setpoint], 42);
    assert.deepEqual(
      plant.writesSince(from).map((request) => [request.functionCode, request.address]),
      [[6, ADDRESS.setpoint]],
    );
    const entry = (await plant.auditEntries()).find(
      (line) => line['outcome'] === 'done' && line['value'] === 42,
    );
    assert.equal(entry?.['peer'], 'hmi-1');
    assert.equal(entry?.['topic'], topic('setpoint'));
  });

  it('writes a scaled int32 in its word order (function 16)', async () => {
    assert.equal(codeOf(await hmi1.client.write({ agent: OT, topic: topic('flow'), value: -5.5 })), 'done');
    // -55 = 0xFFFFFFC9, low word first.
    assert.deepEqual(
      [plant.device.holding[ADDRESS.flow], plant.device.holding[ADDRESS.flow + 1]],
      [0xffc9, 0xffff],
    );
  });

  it('sends every boolean write: three presses of a button are three requests (function 5)', async () => {
    const from = plant.device.requests.length;
    const presses = await Promise.all(
      [true, true, true].map((value) => hmi1.client.write({ agent: OT, topic: topic('start'), value })),
    );
    assert.deepEqual(presses.map(codeOf), ['done', 'done', 'done']);
    assert.deepEqual(
      plant.writesSince(from).map((request) => request.functionCode),
      [5, 5, 5],
    );
    assert.equal(plant.device.coils[ADDRESS.start], 1);
  });

  it('reports a device exception with its Modbus code, and the register keeps its value', async () => {
    const before = plant.device.holding[ADDRESS.locked];
    const result = await hmi1.client.write({ agent: OT, topic: topic('locked'), value: 50 });
    assert.equal(result.status, 'failed');
    assert.equal(result.code, 'AGENT_ERR_WRITE_DEVICE_EXCEPTION');
    assert.match(result.message, /Modbus exception 2 \(illegal data address\)/);
    // Which device, at which address, stays on the OT host: in its audit log, not on the wire.
    assert.doesNotMatch(result.message, new RegExp(`${plant.device.host}|${plant.device.port}`));
    const entry = (await plant.auditEntries()).find(
      (line) => line['code'] === 'AGENT_ERR_WRITE_DEVICE_EXCEPTION',
    );
    assert.match(
      String(entry?.['detail']),
      new RegExp(`device ${plant.device.host}:${plant.device.port}, holding ${ADDRESS.locked}`),
    );
    assert.equal(plant.device.holding[ADDRESS.locked], before);
  });

  it('takes window writes only while dmz-agent writes open has the window open', async () => {
    const cli = async (...argv: string[]) => {
      const run = captureOutput();
      const status = await runAgentCli(['writes', ...argv, '--config', plant.otConfigFile], {}, run.output);
      return { status, stdout: run.stdout() };
    };
    assert.match((await cli('status')).stdout, /closed/);
    assert.equal((await cli('open', '--for', '24h')).status, 1, 'longer than ot.writes.maxWindow');
    assert.equal(
      codeOf(await hmi1.client.write({ agent: OT, topic: topic('windowed'), value: 50 })),
      'AGENT_ERR_WRITE_WINDOW_CLOSED',
    );
    const opened = await cli('open', '--for', '15m');
    assert.equal(opened.status, 0);
    assert.match((await cli('status')).stdout, /open until/);
    assert.equal(codeOf(await hmi1.client.write({ agent: OT, topic: topic('windowed'), value: 50 })), 'done');
    assert.equal(plant.device.holding[ADDRESS.windowed], 50);
    assert.equal((await cli('close')).status, 0);
    const registers = snapshot(plant);
    assert.equal(
      codeOf(await hmi1.client.write({ agent: OT, topic: topic('windowed'), value: 60 })),
      'AGENT_ERR_WRITE_WINDOW_CLOSED',
    );
    assert.deepEqual(snapshot(plant), registers);
  });

  it('audits every refusal with the peer, the point and the code', async () => {
    const entries = await plant.auditEntries();
    for (const { code } of refusals) {
      assert.ok(
        entries.some(
          (entry) =>
            entry['code'] === code && entry['outcome'] === 'refused' && typeof entry['peer'] === 'string',
        ),
        `an audit entry for ${code}`,
      );
    }
  });

  it('counts every outcome by code in the status and the admin metrics, on both sides', async () => {
    const counts = ot.status().writes;
    assert.ok(counts !== undefined);
    const expected = new Map<string, number>();
    for (const { code } of refusals) expected.set(code, (expected.get(code) ?? 0) + 1);
    // The window case above was refused twice more; nothing else was refused.
    expected.set('AGENT_ERR_WRITE_WINDOW_CLOSED', (expected.get('AGENT_ERR_WRITE_WINDOW_CLOSED') ?? 0) + 2);
    assert.deepEqual(counts.refused, Object.fromEntries(expected));
    assert.deepEqual(counts.failed, { AGENT_ERR_WRITE_DEVICE_EXCEPTION: 1 });
    // The setpoint, the flow, three presses, the window write.
    assert.equal(counts.done, 6);
    const metrics = await new AgentMetrics(() => ot.status()).text();
    assert.match(metrics, /dmz_agent_writes_total\{outcome="done",code=""\} 6/);
    assert.match(
      metrics,
      /dmz_agent_writes_total\{outcome="failed",code="AGENT_ERR_WRITE_DEVICE_EXCEPTION"\} 1/,
    );
    assert.match(
      metrics,
      /dmz_agent_writes_total\{outcome="refused",code="AGENT_ERR_WRITE_WINDOW_CLOSED"\} 3/,
    );
    // The IT side counts what its client was answered: hmi-1 sent every done write.
    assert.equal(hmi1.client.stats().done, 6);
    assert.equal(hmi2.client.stats().refused['AGENT_ERR_WRITE_NOT_WRITER'], 1);
  });

  it('the running IT agent writes through agent.writes, signed with the key `dmz-agent writes key` shows', async () => {
    const raw = {
      credentials: await plant.plant.enroll('it', 'hmi-3'),
      state: plant.hmi3State,
      it: {
        sinks: [{ name: 'historian', type: 'jsonl', dir: join(plant.plant.dir, 'hmi-3-sink') }],
        consume: [{ from: OT, sink: 'historian' }],
      },
    };
    const configFile = await plant.plant.configFile('hmi-3.yaml', raw);
    const key = captureOutput();
    assert.equal(await runAgentCli(['writes', 'key', '--config', configFile, '--json'], {}, key.output), 0);
    const shown = JSON.parse(key.stdout()) as {
      agent: string;
      kid: string;
      jwk: { kty: string; crv: string };
    };
    assert.equal(shown.agent, 'hmi-3');
    assert.deepEqual([shown.jwk.kty, shown.jwk.crv], ['OKP', 'Ed25519']);
    // Not running yet: `dmz-agent write` sends as hmi-3, with the same key.
    let run = captureOutput();
    const cli = async (...argv: string[]) => {
      run = captureOutput();
      return runAgentCli(['write', '--config', configFile, '--to', OT, ...argv], {}, run.output);
    };
    assert.equal(await cli('--topic', topic('setpoint'), '--value', '77'), 0);
    assert.equal(plant.device.holding[ADDRESS.setpoint], 77);
    assert.equal(await cli('--topic', topic('setpoint'), '--value', '"77"', '--json'), 1);
    assert.equal((JSON.parse(run.stdout()) as WriteResult).code, 'AGENT_ERR_WRITE_WRONG_TYPE');
    const it = await startAgent(plant.plant.config(raw));
    try {
      await waitFor(() => it.status().relay.connected, 'IT agent connected');
      // Running (its status file says so): the command would take its connection, and refuses.
      await waitFor(() => readAgentStatus(plant.hmi3State), 'the status file');
      assert.equal(await cli('--topic', topic('setpoint'), '--value', '78'), 1);
      assert.equal(plant.device.holding[ADDRESS.setpoint], 77);
      const writes = it.writes;
      assert.ok(writes !== undefined);
      assert.equal(codeOf(await writes.write({ agent: OT, topic: topic('setpoint'), value: 99 })), 'done');
      assert.equal(plant.device.holding[ADDRESS.setpoint], 99);
      // hmi-3 is a writer of the setpoint only.
      assert.equal(
        codeOf(await writes.write({ agent: OT, topic: topic('flow'), value: 1 })),
        'AGENT_ERR_WRITE_NOT_WRITER',
      );
      assert.equal(
        codeOf(await writes.write({ agent: 'nobody', topic: topic('flow'), value: 1 })),
        'RELAY_ERR_NO_SUCH_PEER',
      );
    } finally {
      await it.stop();
    }
  });

  it('a replayed command does nothing, also after the OT agent restarted', async () => {
    const payload = await signed(claimsFor('hmi-1', 'setpoint', 43), plant.keys.hmi1);
    assert.equal(await raw(hmi1, 'setpoint', payload), 'done');
    assert.equal(plant.device.holding[ADDRESS.setpoint], 43);
    // The plant moves on; a replay must not put the old value back.
    plant.device.setHolding(ADDRESS.setpoint, [7]);
    let from = plant.device.requests.length;
    assert.equal(await raw(hmi1, 'setpoint', payload), 'AGENT_ERR_WRITE_REPLAYED');
    assert.deepEqual(plant.writesSince(from), []);

    await ot.stop();
    ot = await plant.startOt();
    await waitFor(() => ot.status().relay.connected, 'OT agent connected again');
    from = plant.device.requests.length;
    // The old session ended with the OT agent's link; the replay goes in a new one once the IT
    // side has heard so (a request in the old one is answered RELAY_ERR_NO_SUCH_SESSION, harmlessly).
    const replayed = await waitFor(async () => {
      const outcome = await raw(hmi1, 'setpoint', payload);
      return outcome === 'RELAY_ERR_NO_SUCH_SESSION' ? undefined : outcome;
    }, 'the replay answered in a new session');
    assert.equal(replayed, 'AGENT_ERR_WRITE_REPLAYED');
    assert.deepEqual(plant.writesSince(from), []);
    assert.equal(plant.device.holding[ADDRESS.setpoint], 7);
  });
});
