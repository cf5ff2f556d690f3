import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { BROKER_LOST_REASON } from '../../../../../agents/ot/sources/mqtt/mqtt-source.ts';
import type { MqttSourceStats } from '../../../../../agents/ot/sources/mqtt/stats.ts';
import { createSource, type SourceConfig } from '../../../../../agents/ot/sources/registry.ts';
import type { PointSource } from '../../../../../agents/ot/sources/source.ts';
import type { PointReading } from '../../../../../agents/points/point.ts';
import { TestBroker, type TestBrokerOptions } from '../../../../support/mqtt-broker.ts';
import { RecordingOutput } from '../../../../support/source-output.ts';
import { createTestPki } from '../../../../support/test-pki.ts';
import { expectNever, waitFor } from '../../../../support/wait.ts';

const AGENT = 'press-7';
const CLIENT_ID = `${AGENT}-plant`;

interface Running {
  readonly source: PointSource;
  readonly output: RecordingOutput;
  readonly stats: () => MqttSourceStats;
}

/** A started source, stopped after the test whatever happens in it. */
function startSource(
  t: TestContext,
  fields: Record<string, unknown>,
  output = new RecordingOutput(),
): Running {
  const config = { type: 'mqtt', name: 'plant', ...fields } as SourceConfig;
  const source = createSource(config, { agentName: AGENT, configPath: '/ot/sources/0' });
  source.start(output);
  t.after(() => source.stop());
  return { source, output, stats: () => source.stats() as MqttSourceStats };
}

async function startConnected(
  t: TestContext,
  fields: Record<string, unknown>,
  output?: RecordingOutput,
): Promise<Running> {
  const running = startSource(t, fields, output);
  await waitFor(() => running.stats().connected, 'the source subscribed');
  return running;
}

async function startBroker(t: TestContext, options?: TestBrokerOptions): Promise<TestBroker> {
  const broker = await TestBroker.start(options);
  t.after(() => broker.stop());
  return broker;
}

function withoutTime(reading: PointReading): Omit<PointReading, 'sourceTime'> {
  const { sourceTime, ...rest } = reading;
  assert.ok(Number.isSafeInteger(sourceTime));
  return rest;
}

/** The readings a test expects: the source time only where the payload gives it. */
type Expected = Omit<PointReading, 'sourceTime'> & { readonly sourceTime?: number };

const TS = Date.parse('2026-12-01T10:00:00.000Z');
const NOT_UTF8 = Buffer.from([0x32, 0xff, 0xfe]);

/** [case, topic kind, payload, reading]: each case publishes once on `<kind>/<case index>`. */
const EXTRACTIONS: [string, string, string | Buffer, Expected][] = [
  ['a decimal', 'raw/number', '21.5', { value: 21.5, quality: 'good' }],
  ['a signed integer with spaces', 'raw/number', ' -3 ', { value: -3, quality: 'good' }],
  ['an exponent', 'raw/number', '1e3', { value: 1000, quality: 'good' }],
  ['hex text', 'raw/number', '0x10', { value: 0, quality: 'bad', reason: 'payload is not a number' }],
  ['empty text', 'raw/number', '', { value: 0, quality: 'bad', reason: 'payload is not a number' }],
  ['NaN', 'raw/number', 'NaN', { value: 0, quality: 'bad', reason: 'payload is not a number' }],
  [
    'a number past a double',
    'raw/number',
    '1e400',
    { value: 0, quality: 'bad', reason: 'payload is not a number' },
  ],
  [
    'bytes that are not UTF-8',
    'raw/number',
    NOT_UTF8,
    { value: 0, quality: 'bad', reason: 'payload is not UTF-8 text' },
  ],
  ['true', 'raw/boolean', 'true', { value: true, quality: 'good' }],
  ['FALSE', 'raw/boolean', 'FALSE', { value: false, quality: 'good' }],
  ['1', 'raw/boolean', '1', { value: true, quality: 'good' }],
  [
    'yes',
    'raw/boolean',
    'yes',
    { value: false, quality: 'bad', reason: 'payload is not a boolean (true, false, 1 or 0)' },
  ],
  ['text', 'raw/string', 'Recipe A', { value: 'Recipe A', quality: 'good' }],
  [
    'text past a point',
    'raw/string',
    'x'.repeat(257),
    { value: '', quality: 'bad', reason: 'payload longer than 256 bytes' },
  ],
  [
    'a JSON number with a time',
    'json/number',
    JSON.stringify({ data: { temp: 80.25 }, ts: TS }),
    { value: 80.25, quality: 'good', sourceTime: TS },
  ],
  [
    'a JSON numeric text with an RFC 3339 time',
    'json/number',
    JSON.stringify({ data: { temp: '7' }, ts: '2026-12-01T10:00:00.000Z' }),
    { value: 7, quality: 'good', sourceTime: TS },
  ],
  [
    'a JSON number without its time',
    'json/number',
    JSON.stringify({ data: { temp: 1 } }),
    { value: 1, quality: 'uncertain', reason: 'payload has no timestamp at the timestamp path' },
  ],
  [
    'a JSON number with a time that is none',
    'json/number',
    JSON.stringify({ data: { temp: 2 }, ts: 'yesterday' }),
    { value: 2, quality: 'uncertain', reason: 'timestamp is not a time since 1970' },
  ],
  [
    'a JSON field that is missing',
    'json/number',
    JSON.stringify({ data: {} }),
    { value: 0, quality: 'bad', reason: 'payload has no value at the value path' },
  ],
  [
    'a JSON field that is an object',
    'json/number',
    JSON.stringify({ data: { temp: { v: 1 } } }),
    { value: 0, quality: 'bad', reason: 'value is not a number' },
  ],
  [
    'text that is not JSON',
    'json/number',
    '{"data":',
    { value: 0, quality: 'bad', reason: 'payload is not JSON' },
  ],
  [
    'JSON past the parse bound',
    'json/number',
    JSON.stringify({ data: { temp: 1 }, pad: 'x'.repeat(64 * 1024) }),
    { value: 0, quality: 'bad', reason: 'payload longer than 65536 bytes' },
  ],
  [
    'a time in seconds',
    'json/seconds',
    JSON.stringify({ v: 5, t: TS / 1000 }),
    { value: 5, quality: 'good', sourceTime: TS },
  ],
  ['a JSON boolean', 'json/boolean', '{"on":true}', { value: true, quality: 'good' }],
  ['a JSON 0 as a boolean', 'json/boolean', '{"on":0}', { value: false, quality: 'good' }],
  [
    'a JSON 2 as a boolean',
    'json/boolean',
    '{"on":2}',
    { value: false, quality: 'bad', reason: 'value is not a boolean' },
  ],
  ['a JSON array element', 'json/string', '{"values":["a","b"]}', { value: 'b', quality: 'good' }],
  ['a JSON number as text', 'json/string', '{"values":[0,42]}', { value: '42', quality: 'good' }],
  [
    'a JSON string the point model refuses',
    'json/string',
    '{"values":[0,"\\ud800"]}',
    { value: '', quality: 'bad', reason: 'point is invalid: string value is not well-formed Unicode' },
  ],
];

const EXTRACTION_MAPPINGS = [
  { filter: 'raw/number/+', topic: 'raw/number/{1}' },
  { filter: 'raw/boolean/+', topic: 'raw/boolean/{1}', type: 'boolean' },
  { filter: 'raw/string/+', topic: 'raw/string/{1}', type: 'string' },
  { filter: 'json/number/+', topic: 'json/number/{1}', value: '$.data.temp', timestamp: '$.ts' },
  { filter: 'json/seconds/+', topic: 'json/seconds/{1}', value: '$.v', timestamp: '$.t', timestampUnit: 's' },
  { filter: 'json/boolean/+', topic: 'json/boolean/{1}', value: '$.on', type: 'boolean' },
  { filter: 'json/string/+', topic: 'json/string/{1}', value: '$.values[1]', type: 'string' },
];

describe('agents/ot/sources/mqtt source against a real broker (aedes)', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await TestBroker.start();
  });
  after(async () => {
    await broker.stop();
  });

  it('mqtt - raw and JSON payloads become readings of the mapping type, bad ones bad with the reason', async (t) => {
    const { output, stats } = await startConnected(t, {
      broker: { url: broker.url },
      mappings: EXTRACTION_MAPPINGS,
    });
    const before = Date.now();
    for (const [index, [, kind, payload]] of EXTRACTIONS.entries()) {
      await broker.publish(`${kind}/case${index}`, payload);
    }
    await waitFor(() => output.count >= EXTRACTIONS.length, 'a reading per case');
    const afterAll = Date.now();
    for (const [index, [name, kind, , expected]] of EXTRACTIONS.entries()) {
      const readings = output.readingsOf(`${AGENT}/plant/${kind}/case${index}`);
      assert.equal(readings.length, 1, name);
      const { sourceTime, ...reading } = readings[0]!;
      const { sourceTime: expectedTime, ...expectedReading } = expected;
      assert.deepEqual(reading, expectedReading, name);
      if (expectedTime !== undefined) assert.equal(sourceTime, expectedTime, name);
      else assert.ok(sourceTime >= before && sourceTime <= afterAll, `${name}: received at ${sourceTime}`);
    }
    const bad = EXTRACTIONS.filter(([, , , expected]) => expected.quality === 'bad').length;
    assert.equal(stats().badPayloads, bad);
    assert.equal(stats().messages, EXTRACTIONS.length);
  });

  it('mqtt - a bad payload repeats the last value as bad, and the next good one is good again', async (t) => {
    const { source, output, stats } = await startConnected(t, {
      broker: { url: broker.url },
      mappings: [{ filter: 'hall/+/temp', topic: 'hall/{1}/temp', unit: 'degC' }],
    });
    for (const payload of ['20.5', 'sensor fault', '21']) await broker.publish('hall/north/temp', payload);
    const topic = `${AGENT}/plant/hall/north/temp`;
    await waitFor(() => output.readingsOf(topic).length === 3, 'three readings');
    const readings = output.readingsOf(topic).map(withoutTime);
    assert.deepEqual(readings, [
      { value: 20.5, quality: 'good' },
      { value: 20.5, quality: 'bad', reason: 'payload is not a number' },
      { value: 21, quality: 'good' },
    ]);
    assert.equal(stats().badPayloads, 1);
    assert.deepEqual(source.topicMetadata.get(topic), { unit: 'degC' });
    assert.deepEqual(source.topics, [topic]);
  });

  it('mqtt - a topic level outside the topic grammar is dropped and counted, the next message arrives', async (t) => {
    const { output, stats } = await startConnected(t, {
      broker: { url: broker.url },
      mappings: [{ filter: 'site/+/line/#', topic: '{1}/{2}' }],
    });
    await broker.publish('site/hall 1/line/a/b', '1');
    await broker.publish('site/hall2/line/a/b', '2');
    await waitFor(() => output.count === 1, 'the valid reading');
    assert.deepEqual(output.writes[0]?.topic, `${AGENT}/plant/hall2/a/b`);
    assert.equal(stats().dropped['invalid-topic'], 1);
  });

  it('mqtt - connects from the configured local address', async (t) => {
    const from = broker.remoteAddresses.length;
    await startConnected(t, {
      broker: { url: broker.url, localAddress: '127.0.0.2' },
      mappings: [{ filter: 'x', topic: 'x' }],
    });
    assert.deepEqual(broker.remoteAddresses.slice(from), ['127.0.0.2']);
  });

  it('mqtt - a refused write is written again, nothing lost, the refusal reported with its code', async (t) => {
    const output = new RecordingOutput();
    output.refusals = 2;
    const { stats } = await startConnected(
      t,
      { broker: { url: broker.url }, mappings: [{ filter: 'count', topic: 'count' }] },
      output,
    );
    for (let value = 0; value < 5; value++) await broker.publish('count', String(value));
    await waitFor(() => output.count === 5, 'every reading written');
    assert.deepEqual(
      output.readingsOf(`${AGENT}/plant/count`).map((reading) => reading.value),
      [0, 1, 2, 3, 4],
    );
    assert.equal(stats().failedWrites, 2);
    assert.equal(stats().lastError?.code, 'AGENT_ERR_LOG_BUSY');
  });

  it('mqtt - a full buffer pauses the client, then drops the oldest, counted; memory stays bounded', async (t) => {
    const output = new RecordingOutput();
    output.held = true;
    // keepalive 2 s: the client pauses at most 500 ms before it drops.
    const { stats } = await startConnected(
      t,
      {
        broker: { url: broker.url, keepalive: '2s' },
        buffer: 10,
        mappings: [{ filter: 'fast', topic: 'fast' }],
      },
      output,
    );
    const published = 40;
    let mostBuffered = 0;
    for (let value = 0; value < published; value++) {
      await broker.publish('fast', String(value), { qos: 1 });
      mostBuffered = Math.max(mostBuffered, stats().buffered);
    }
    await waitFor(() => stats().messages === published, 'every message taken', 10_000);
    assert.ok(stats().pauses >= 1, 'the client paused first');
    assert.ok(stats().dropped['buffer-full'] > 0, 'then dropped');
    assert.ok(Math.max(mostBuffered, stats().buffered) <= 10, `at most the buffer held (${mostBuffered})`);
    assert.match(stats().lastError?.message ?? '', /buffer is full/);
    output.release();
    const dropped = stats().dropped['buffer-full'];
    await waitFor(() => output.count === published - dropped, 'the kept readings written');
    const values = output.readingsOf(`${AGENT}/plant/fast`).map((reading) => reading.value as number);
    assert.deepEqual(
      values,
      [...values].sort((a, b) => a - b),
      'in order',
    );
    assert.equal(values.at(-1), published - 1, 'the newest kept');
    assert.equal(stats().connections, 1, 'the pause did not cost the connection');
  });

  it('mqtt - stop writes what waits and leaves the broker for good', async (t) => {
    const output = new RecordingOutput();
    output.held = true;
    const { source, stats } = await startConnected(
      t,
      { broker: { url: broker.url }, mappings: [{ filter: 'stop', topic: 'stop' }] },
      output,
    );
    await broker.publish('stop', '1');
    await waitFor(() => output.inFlight === 1, 'a write in flight');
    for (const value of ['2', '3']) await broker.publish('stop', value);
    await waitFor(() => stats().buffered === 3, 'two readings waiting');
    const stopped = source.stop();
    output.release();
    await stopped;
    assert.deepEqual(
      output.readingsOf(`${AGENT}/plant/stop`).map((reading) => reading.value),
      [1, 2, 3],
    );
    assert.equal(stats().dropped.stopped, 0);
    await waitFor(() => broker.subscribed(CLIENT_ID).size === 0, 'the client gone');
    await expectNever(() => broker.subscribed(CLIENT_ID).size > 0, 'a reconnect after stop', 1_000);
  });
});

describe('agents/ot/sources/mqtt reconnects', () => {
  for (const clean of [true, false]) {
    it(`mqtt - broker restart (clean: ${clean}): points go bad, the subscriptions come back, messages flow`, async (t) => {
      const broker = await startBroker(t);
      const { output, stats } = await startConnected(t, {
        broker: { url: broker.url, clean },
        qos: 1,
        mappings: [
          { filter: 'tank/+/level', topic: 'tank/{1}/level' },
          { filter: 'tank/+/mode', topic: 'tank/{1}/mode', type: 'string' },
        ],
      });
      const topic = `${AGENT}/plant/tank/t1/level`;
      await broker.publish('tank/t1/level', '42');
      await waitFor(() => output.readingsOf(topic).length === 1, 'the first reading');

      await broker.restart();
      await waitFor(() => output.last(topic)?.reason === BROKER_LOST_REASON, 'the point bad, broker away');
      assert.deepEqual(output.last(topic), {
        value: 42,
        quality: 'bad',
        reason: BROKER_LOST_REASON,
        sourceTime: output.last(topic)?.sourceTime,
      });
      await waitFor(() => stats().connections === 2 && stats().connected, 'connected again', 10_000);
      // Subscribed again by the source itself: the new broker has no session to restore, whatever
      // `clean` asked for (mqtt.js left this to flags and session state, MQTT.js issues 875, 895).
      assert.deepEqual([...broker.subscribed(CLIENT_ID)].sort(), ['tank/+/level', 'tank/+/mode']);

      await broker.publish('tank/t1/level', '43');
      await waitFor(() => output.last(topic)?.value === 43, 'a reading after the restart');
      assert.equal(output.last(topic)?.quality, 'good');
    });
  }

  it('mqtt - a persistent session: QoS 1 messages sent while the connection was down arrive after it', async (t) => {
    const broker = await startBroker(t);
    const { output, stats } = await startConnected(t, {
      broker: { url: broker.url, clean: false },
      qos: 1,
      mappings: [{ filter: 'batch/+', topic: 'batch/{1}', type: 'string' }],
    });
    broker.dropConnections();
    await waitFor(() => !stats().connected && broker.connections === 0, 'the connection down');
    await broker.publish('batch/id', 'B-1001', { qos: 1 });
    await waitFor(() => stats().connections === 2, 'connected again', 10_000);
    await waitFor(
      () => output.last(`${AGENT}/plant/batch/id`)?.value === 'B-1001',
      'the message kept by the broker',
    );
  });

  it('mqtt - a broker down at start is retried until it is up', async (t) => {
    const broker = await startBroker(t);
    await broker.stop();
    const { output, stats } = startSource(t, {
      broker: { url: broker.url },
      mappings: [{ filter: 'late', topic: 'late' }],
    });
    await waitFor(() => stats().lastError?.message.includes('ECONNREFUSED'), 'the refusal reported');
    assert.equal(stats().connected, false);
    await broker.restart();
    await waitFor(() => stats().connected, 'connected once the broker is up', 15_000);
    await broker.publish('late', '1');
    await waitFor(() => output.count === 1, 'a reading');
    assert.ok(stats().connectionAttempts >= 2);
  });

  it('mqtt - a refused CONNACK ("server unavailable") is tried again; the password comes from its file', async (t) => {
    // mqtt.js stops reconnecting for good after a refused CONNACK unless told otherwise: a broker
    // that is still starting up would lose the source forever.
    const passwords: string[] = [];
    const broker = await startBroker(t, {
      aedes: {
        authenticate: (_client, username, password, done) => {
          passwords.push(`${username ?? ''}:${password?.toString() ?? ''}`);
          if (passwords.length <= 2)
            done(Object.assign(new Error('starting'), { returnCode: 3 as const }), null);
          else done(null, true);
        },
      },
    });
    const dir = await mkdtemp(join(tmpdir(), 'mqtt-password-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'password'), 's3cret\n', { mode: 0o600 });
    const { stats } = startSource(t, {
      broker: { url: broker.url, username: 'agent', passwordFile: join(dir, 'password') },
      mappings: [{ filter: 'x', topic: 'x' }],
    });
    await waitFor(() => stats().connected, 'connected after two refusals', 15_000);
    assert.deepEqual(passwords, ['agent:s3cret', 'agent:s3cret', 'agent:s3cret']);
    assert.equal(stats().connectionAttempts, 3);
  });

  it('mqtt - a subscription the broker refuses is reported; the others work', async (t) => {
    const broker = await startBroker(t, {
      aedes: {
        authorizeSubscribe: (_client, subscription, callback) =>
          callback(null, subscription.topic.startsWith('secret/') ? null : subscription),
      },
    });
    const { output, stats } = await startConnected(t, {
      broker: { url: broker.url },
      mappings: [
        { filter: 'secret/#', topic: 'secret/{1}' },
        { filter: 'open/#', topic: 'open/{1}' },
      ],
    });
    assert.deepEqual(stats().refusedFilters, ['secret/#']);
    assert.match(stats().lastError?.message ?? '', /refused the subscriptions secret\/#/);
    await broker.publish('open/a', '1');
    await waitFor(() => output.count === 1, 'a reading of the granted filter');
  });
});

describe('agents/ot/sources/mqtt over TLS', () => {
  let dir: string;
  let pki: Awaited<ReturnType<typeof createTestPki>>;
  let broker: TestBroker;
  before(async () => {
    pki = await createTestPki();
    dir = await mkdtemp(join(tmpdir(), 'mqtt-tls-'));
    const client = await pki.issueAgent('ot', AGENT);
    await writeFile(join(dir, 'ca.pem'), pki.ca.certPem);
    await writeFile(join(dir, 'client.pem'), client.certPem);
    await writeFile(join(dir, 'client.key'), client.keyPem, { mode: 0o600 });
    await writeFile(join(dir, 'wrong-ca.pem'), pki.relay.certPem);
    broker = await TestBroker.start({
      tls: {
        cert: pki.relay.certPem,
        key: pki.relay.keyPem,
        ca: pki.ca.certPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
    });
  });
  after(async () => {
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('mqtts - connects with the configured CA and client certificate', async (t) => {
    const { output } = await startConnected(t, {
      broker: {
        url: broker.url,
        ca: join(dir, 'ca.pem'),
        cert: join(dir, 'client.pem'),
        key: join(dir, 'client.key'),
      },
      mappings: [{ filter: 'secure', topic: 'secure' }],
    });
    await broker.publish('secure', '1');
    await waitFor(() => output.count === 1, 'a reading over TLS');
  });

  it('mqtts - a broker certificate that does not chain to the configured CA is refused', async (t) => {
    const { stats } = startSource(t, {
      broker: {
        url: broker.url,
        ca: join(dir, 'wrong-ca.pem'),
        cert: join(dir, 'client.pem'),
        key: join(dir, 'client.key'),
      },
      mappings: [{ filter: 'secure', topic: 'secure' }],
    });
    await waitFor(() => stats().lastError?.message.match(/certificate|issuer/i), 'the refusal reported');
    assert.equal(stats().connections, 0);
    assert.equal(stats().connected, false);
  });

  it('mqtts - a missing credential file is reported and retried, not a crash', async (t) => {
    const { stats } = startSource(t, {
      broker: { url: broker.url, ca: join(dir, 'missing.pem') },
      mappings: [{ filter: 'secure', topic: 'secure' }],
    });
    await waitFor(() => stats().lastError?.message.includes('ENOENT'), 'the missing file reported');
    assert.match(stats().lastError?.message ?? '', /could not read the broker credentials/);
  });
});
