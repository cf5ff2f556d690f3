/**
 * OPC UA writes against node-opcua's own server: the value goes out as a Variant of the node's
 * own DataType; a value that DataType cannot hold is refused before anything is sent, and a Bad
 * status of the server comes back as the device's refusal, with its name.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DataType } from 'node-opcua';
import type { WriteOutcome } from '../../../../../agents/ot/sources/source.ts';
import { TestOpcuaServer } from '../../../../support/opcua-server.ts';
import { freePort } from '../../../../support/ports.ts';
import { waitFor } from '../../../../support/wait.ts';
import { makeTempDir, opcuaSection, startSource, type RunningSource } from './opcua-fixture.ts';

const topic = (name: string) => `press-7/plc/${name}`;
const codeOf = (outcome: WriteOutcome) => (outcome.ok ? 'done' : outcome.code);

describe('opcua source: writes', () => {
  let server: TestOpcuaServer;
  let temp: Awaited<ReturnType<typeof makeTempDir>>;
  let running: RunningSource;

  const write = (name: string, value: number | boolean | string, deadline = Date.now() + 30_000) => {
    const { source } = running;
    assert.ok(source.write !== undefined, 'the OPC UA source takes writes');
    return source.write(topic(name), value, deadline);
  };

  before(async () => {
    temp = await makeTempDir('opcua-write-');
    server = await TestOpcuaServer.start({
      port: await freePort(),
      pkiDir: `${temp.dir}/server-pki`,
      variables: [
        { name: 'Setpoint', dataType: DataType.Double, value: 20 },
        { name: 'Level', dataType: DataType.Int16, value: 5 },
        { name: 'Enabled', dataType: DataType.Boolean, value: false },
        { name: 'Recipe', dataType: DataType.String, value: 'PVC-12' },
      ],
    });
    running = startSource(
      opcuaSection({
        endpoint: server.endpoint,
        security: { mode: 'None' },
        items: [
          { name: 'setpoint', nodeId: 'ns=1;s=Setpoint' },
          { name: 'level', nodeId: 'ns=1;s=Level' },
          { name: 'enabled', nodeId: 'ns=1;s=Enabled' },
          { name: 'recipe', nodeId: 'ns=1;s=Recipe' },
          { name: 'missing', nodeId: 'ns=1;s=NoSuchTag' },
        ],
      }),
      temp.dir,
    );
    await running.output.next(topic('setpoint'), (reading) => reading.quality === 'good', 'connected');
  });

  after(async () => {
    await running?.source.stop();
    await server?.close();
    await temp?.remove();
  });

  it('writes a Double, an Int16, a Boolean and a String as the node holds them', async () => {
    assert.equal(codeOf(await write('setpoint', 42.5)), 'done');
    assert.equal(codeOf(await write('level', -7)), 'done');
    assert.equal(codeOf(await write('enabled', true)), 'done');
    assert.equal(codeOf(await write('recipe', 'PE-3')), 'done');
    assert.deepEqual(
      ['Setpoint', 'Level', 'Enabled', 'Recipe'].map((name) => server.value(name)),
      [42.5, -7, true, 'PE-3'],
    );
  });

  const refusals = [
    {
      name: 'a number too large for an Int16',
      item: 'level',
      value: 70_000,
      code: 'AGENT_ERR_WRITE_OUT_OF_RANGE',
    },
    { name: 'a fraction to an Int16', item: 'level', value: 1.5, code: 'AGENT_ERR_WRITE_OUT_OF_RANGE' },
    { name: 'a number to a Boolean', item: 'enabled', value: 1, code: 'AGENT_ERR_WRITE_WRONG_TYPE' },
    { name: 'a string to a Double', item: 'setpoint', value: '42', code: 'AGENT_ERR_WRITE_WRONG_TYPE' },
  ] as const;

  for (const refusal of refusals) {
    it(`refuses ${refusal.name}, and the node keeps its value`, async () => {
      const before = ['Setpoint', 'Level', 'Enabled'].map((name) => server.value(name));
      assert.equal(codeOf(await write(refusal.item, refusal.value)), refusal.code);
      assert.deepEqual(
        ['Setpoint', 'Level', 'Enabled'].map((name) => server.value(name)),
        before,
      );
    });
  }

  it('sends nothing once the deadline has passed (a slow server must not carry it past)', async () => {
    const before = server.value('Setpoint');
    assert.equal(codeOf(await write('setpoint', 77, Date.now() - 1)), 'AGENT_ERR_WRITE_EXPIRED');
    assert.equal(server.value('Setpoint'), before);
  });

  it('a write the client holds while the server is away is not carried past its deadline', async () => {
    const { output } = running;
    const before = output.count(topic('setpoint'));
    await server.stop();
    await output.next(topic('setpoint'), (reading) => reading.quality === 'bad', 'the server gone', before);
    const deadline = Date.now() + 300;
    const pending = write('setpoint', 55, deadline);
    await waitFor(() => Date.now() > deadline, 'the deadline passed');
    // node-opcua holds requests while it repairs the connection, and sends them once it is back.
    const afterRestart = output.count(topic('setpoint'));
    await server.restart();
    await output.next(topic('setpoint'), (reading) => reading.quality === 'good', 'back', afterRestart);
    const outcome = await pending;
    assert.notEqual(codeOf(outcome), 'done');
    assert.equal(server.value('Setpoint'), 20, 'the restarted server never got the late write');
  });

  it("reports the server's Bad status as the device's refusal", async () => {
    const outcome = await write('missing', 1);
    assert.equal(codeOf(outcome), 'AGENT_ERR_WRITE_DEVICE_EXCEPTION');
    assert.match(outcome.ok ? '' : outcome.message, /BadNodeIdUnknown/);
  });
});
