/**
 * The OPC UA source against a real server (node-opcua's OPCUAServer, one for the whole file, on a
 * loopback port of its own), security mode None: data changes as points with their quality and
 * source timestamps, StatusCodes and values outside the point model, and a server restart.
 * Security modes and trust are in security.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DataType, StatusCodes, VariantArrayType } from 'node-opcua';
import { TestOpcuaServer } from '../../../../support/opcua-server.ts';
import { freePort } from '../../../../support/ports.ts';
import { expectNever, waitFor } from '../../../../support/wait.ts';
import { makeTempDir, opcuaSection, startSource, topic, type RunningSource } from './opcua-fixture.ts';

const TEMPERATURE_AT = new Date('2026-12-01T10:00:00.000Z');

describe('opcua source', () => {
  let server: TestOpcuaServer;
  let temp: Awaited<ReturnType<typeof makeTempDir>>;
  const running: RunningSource[] = [];

  const items = [
    { name: 'temp', nodeId: 'ns=1;s=Temperature', unit: 'degC' },
    { name: 'run', nodeId: 'ns=1;s=Running', samplingInterval: '50ms', queueSize: 1 },
    { name: 'count', nodeId: 'ns=1;s=Counter' },
    { name: 'recipe', nodeId: 'ns=1;s=Recipe' },
    { name: 'wave', nodeId: 'ns=1;s=Waveform' },
    { name: 'blob', nodeId: 'ns=1;s=Blob' },
    { name: 'huge', nodeId: 'ns=1;s=Huge' },
    { name: 'missing', nodeId: 'ns=1;s=NoSuchTag' },
  ];

  function start(fields: Record<string, unknown> = {}): RunningSource {
    const source = startSource(
      opcuaSection({ endpoint: server.endpoint, security: { mode: 'None' }, items, ...fields }),
      temp.dir,
    );
    running.push(source);
    return source;
  }

  before(async () => {
    temp = await makeTempDir('opcua-source-');
    server = await TestOpcuaServer.start({
      port: await freePort(),
      pkiDir: `${temp.dir}/server-pki`,
      // Fewer than the items: the source must split its CreateMonitoredItems requests.
      maxMonitoredItemsPerCall: 3,
      variables: [
        { name: 'Temperature', dataType: DataType.Double, value: 21.5 },
        { name: 'Running', dataType: DataType.Boolean, value: true },
        { name: 'Counter', dataType: DataType.Int64, value: [0, 7] },
        { name: 'Recipe', dataType: DataType.String, value: 'PVC-12' },
        {
          name: 'Waveform',
          dataType: DataType.Double,
          arrayType: VariantArrayType.Array,
          value: new Float64Array([1, 2.5, 3]),
        },
        { name: 'Blob', dataType: DataType.ByteString, value: Buffer.from('raw') },
        // 2^60: an Int64 a point cannot hold exactly.
        { name: 'Huge', dataType: DataType.UInt64, value: [0x1000_0000, 0] },
      ],
    });
  });

  after(async () => {
    await Promise.all(running.map(({ source }) => source.stop()));
    await server.close();
    await temp.remove();
  });

  it('data changes arrive as points with their quality and the source timestamp', async () => {
    const { source, output } = start();
    assert.deepEqual(
      source.topics,
      items.map((item) => topic(item.name)),
    );
    assert.deepEqual(source.topicMetadata.get(topic('temp')), { unit: 'degC' });
    const first = await output.next(
      topic('temp'),
      (reading) => reading.quality === 'good',
      'the initial value',
    );
    assert.equal(first.value, 21.5);
    assert.equal((await output.next(topic('run'), () => true, 'a value')).value, true);
    assert.equal(
      (await output.next(topic('count'), () => true, 'a value')).value,
      7,
      'an Int64 within 2^53 is a number',
    );
    assert.equal((await output.next(topic('recipe'), () => true, 'a value')).value, 'PVC-12');
    assert.deepEqual((await output.next(topic('wave'), () => true, 'a value')).value, [1, 2.5, 3]);

    server.set('Temperature', 23.25, StatusCodes.Good, TEMPERATURE_AT);
    const changed = await output.next(topic('temp'), (reading) => reading.value === 23.25, 'the change');
    assert.deepEqual(changed, { value: 23.25, quality: 'good', sourceTime: TEMPERATURE_AT.getTime() });
    assert.ok(source.stats().readings >= 6, 'writes that resolved are counted');
  });

  it('a Bad or Uncertain StatusCode is the quality, with the status name as the reason', async () => {
    const { output } = start();
    await output.next(topic('temp'), (reading) => reading.quality === 'good', 'the initial value');
    server.set('Temperature', 24, StatusCodes.BadSensorFailure);
    const bad = await output.next(topic('temp'), (reading) => reading.quality === 'bad', 'a bad reading');
    assert.equal(bad.reason, 'BadSensorFailure');
    server.set('Temperature', 24.5, StatusCodes.UncertainLastUsableValue);
    const uncertain = await output.next(
      topic('temp'),
      (reading) => reading.quality === 'uncertain',
      'an uncertain one',
    );
    assert.deepEqual([uncertain.value, uncertain.reason], [24.5, 'UncertainLastUsableValue']);
    server.set('Temperature', 25);
    await output.next(
      topic('temp'),
      (reading) => reading.quality === 'good' && reading.value === 25,
      'good again',
    );
  });

  it('an unknown node and values outside the point model read bad and say why; the others flow', async () => {
    const { source, output } = start();
    const missing = await output.next(topic('missing'), () => true, 'a reading');
    assert.deepEqual([missing.quality, missing.reason], ['bad', 'BadNodeIdUnknown']);
    const blob = await output.next(topic('blob'), () => true, 'a reading');
    assert.deepEqual([blob.quality, blob.reason], ['bad', 'ByteString is outside the point model']);
    const huge = await output.next(topic('huge'), () => true, 'a reading');
    assert.equal(huge.quality, 'bad');
    assert.match(huge.reason ?? '', /^UInt64 1152921504606846976 is beyond 2\^53/);
    await output.next(topic('temp'), (reading) => reading.quality === 'good', 'the good item next to them');
    assert.match(
      source.stats().lastError?.message ?? '',
      /item missing \(ns=1;s=NoSuchTag\): BadNodeIdUnknown/,
    );
  });

  it('survives a server restart: points go bad while it is away, values flow again once it is back', async () => {
    const { output } = start();
    await output.next(topic('temp'), (reading) => reading.quality === 'good', 'the initial value');
    const before = output.count(topic('temp'));
    const lastGood = output.readingsOf(topic('temp')).at(-1)?.value;
    await server.stop();
    const lost = await output.next(
      topic('temp'),
      (reading) => reading.quality === 'bad',
      'a bad reading',
      before,
    );
    assert.deepEqual(
      [lost.reason, lost.value],
      ['BadConnectionClosed', lastGood],
      'the last value, marked bad',
    );
    // A source started while the server is away reads bad from the start, and connects once it is back.
    const late = start({ name: 'late' });
    const unreachable = await late.output.next(topic('temp', 'late'), () => true, 'a first reading');
    assert.deepEqual([unreachable.quality, unreachable.reason], ['bad', 'BadServerNotConnected']);

    await server.restart();
    const afterRestart = output.count(topic('temp'));
    await output.next(
      topic('temp'),
      (reading) => reading.quality === 'good',
      'a good value after the restart',
      afterRestart,
    );
    server.set('Temperature', 31.5);
    await output.next(
      topic('temp'),
      (reading) => reading.value === 31.5 && reading.quality === 'good',
      'a new value',
    );
    await late.output.next(topic('temp', 'late'), (reading) => reading.value === 31.5, 'the late source too');
    const reconnected = output.readingsOf(topic('missing')).at(-1);
    assert.equal(reconnected?.reason, 'BadNodeIdUnknown', 'an item the server still refuses says so again');
  });

  it('leaves from localAddress when one is configured, and says so when no NIC here has it', async () => {
    const { output } = start({ name: 'bound', localAddress: '127.0.0.2' });
    await output.next(topic('temp', 'bound'), (reading) => reading.quality === 'good', 'a good value');
    assert.ok(
      server.peers.some((peer) => peer.endsWith('127.0.0.2')),
      `peers: ${server.peers.join(', ')}`,
    );
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): an address no host here has.
    const { source, output: elsewhere } = start({ name: 'elsewhere', localAddress: '192.0.2.1' });
    const refused = await elsewhere.next(topic('temp', 'elsewhere'), () => true, 'a reading');
    assert.deepEqual([refused.quality, refused.reason], ['bad', 'BadServerNotConnected']);
    await waitFor(
      () => /localAddress is not an address of this host/.test(source.stats().lastError?.message ?? ''),
      'the reason in status',
    );
  });

  it('stops: nothing is written after stop resolves', async () => {
    const { source, output } = start({ name: 'stopping' });
    await output.next(topic('temp', 'stopping'), () => true, 'a reading');
    await source.stop();
    const written = output.writes.length;
    server.set('Temperature', 40);
    // Three publishing intervals: a subscription still alive would have delivered the change.
    await expectNever(() => output.writes.length > written, 'a write after stop', 300);
  });
});
