import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { get as getSparkplugCodec } from 'sparkplug-payload';
import type { UMetric } from 'sparkplug-payload/lib/sparkplugbpayload.js';
import type { MqttSourceStats } from '../../../../../agents/ot/sources/mqtt/stats.ts';
import { createSource, type SourceConfig } from '../../../../../agents/ot/sources/registry.ts';
import type { PointSource } from '../../../../../agents/ot/sources/source.ts';
import type { PointReading } from '../../../../../agents/points/point.ts';
import { TestBroker } from '../../../../support/mqtt-broker.ts';
import { RecordingOutput } from '../../../../support/source-output.ts';
import { expectNever, waitFor } from '../../../../support/wait.ts';

const AGENT = 'press-7';
const CLIENT_ID = `${AGENT}-plant`;
const GROUP = 'plant1';
const TS = Date.parse('2026-12-01T10:00:00.000Z');
const codec = getSparkplugCodec('spBv1.0')!;

/** An edge node as the broker sees it: its messages, numbered as Sparkplug numbers them. */
class EdgeNode {
  readonly id: string;
  readonly #broker: TestBroker;
  seq = 0;

  constructor(broker: TestBroker, id: string) {
    this.#broker = broker;
    this.id = id;
  }

  /** An NBIRTH: bdSeq and the rebirth control first, as edge nodes send them; `seq` starts again. */
  async birth(metrics: UMetric[], options: { bdSeq?: number; seq?: number } = {}): Promise<void> {
    this.seq = options.seq ?? 0;
    await this.#publish('NBIRTH', undefined, [
      { name: 'bdSeq', type: 'Int64', value: options.bdSeq ?? 0 },
      { name: 'Node Control/Rebirth', type: 'Boolean', value: false, alias: 0 },
      ...metrics,
    ]);
  }

  async death(bdSeq = 0): Promise<void> {
    await this.#broker.publish(
      `spBv1.0/${GROUP}/NDEATH/${this.id}`,
      codec.encodePayload({ timestamp: TS, metrics: [{ name: 'bdSeq', type: 'Int64', value: bdSeq }] }),
    );
  }

  /** NDATA, DBIRTH, DDATA or DDEATH with the next `seq` (or `seq`, to make a gap). */
  async send(
    type: 'NDATA' | 'DBIRTH' | 'DDATA' | 'DDEATH',
    metrics: UMetric[],
    device?: string,
    seq?: number,
  ) {
    this.seq = seq ?? (this.seq + 1) % 256;
    await this.#publish(type, device, metrics);
  }

  async #publish(type: string, device: string | undefined, metrics: UMetric[]): Promise<void> {
    const topic = `spBv1.0/${GROUP}/${type}/${this.id}${device === undefined ? '' : `/${device}`}`;
    await this.#broker.publish(topic, codec.encodePayload({ timestamp: TS, seq: this.seq, metrics }));
  }
}

interface Running {
  readonly source: PointSource;
  readonly output: RecordingOutput;
  readonly stats: () => MqttSourceStats;
}

async function startSparkplug(t: TestContext, broker: TestBroker, edgeNode?: string): Promise<Running> {
  const config = {
    type: 'mqtt',
    name: 'plant',
    broker: { url: broker.url },
    sparkplug: { group: GROUP, ...(edgeNode === undefined ? {} : { edgeNode }) },
  } as SourceConfig;
  const source = createSource(config, { agentName: AGENT });
  const output = new RecordingOutput();
  source.start(output);
  t.after(() => source.stop());
  const stats = () => source.stats() as MqttSourceStats;
  await waitFor(() => stats().connected, 'the source subscribed');
  return { source, output, stats };
}

/** The rebirth requests the source published for `edgeNode`, decoded. */
function rebirthRequests(broker: TestBroker, edgeNode: string): UMetric[][] {
  return broker.published
    .filter(
      (message) => message.clientId === CLIENT_ID && message.topic === `spBv1.0/${GROUP}/NCMD/${edgeNode}`,
    )
    .map((message) => codec.decodePayload(message.payload).metrics ?? []);
}

function values(output: RecordingOutput, topic: string): PointReading[] {
  return output.readingsOf(`${AGENT}/plant/${topic}`);
}

describe('agents/ot/sources/mqtt Sparkplug B against a real broker (aedes)', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await TestBroker.start();
  });
  after(async () => {
    await broker.stop();
  });

  it('sparkplug - births and data become readings by metric name, aliases from the births', async (t) => {
    const { output, stats, source } = await startSparkplug(t, broker);
    const edge = new EdgeNode(broker, 'edge1');
    await edge.birth([
      { name: 'Inputs/Temp 1', type: 'Double', value: 20.5, alias: 1, timestamp: TS - 1000 },
      { name: 'Mode', type: 'String', value: 'auto', alias: 2 },
    ]);
    await edge.send('NDATA', [{ alias: 1, type: 'Double', value: 21.25, timestamp: TS + 1000 }]);
    await edge.send('DBIRTH', [{ name: 'speed', type: 'Int32', value: 1450, alias: 10 }], 'pump 1');
    await edge.send('DDATA', [{ alias: 10, type: 'Int32', value: 1500 }], 'pump 1');
    await waitFor(() => output.count === 5, 'five readings');
    assert.deepEqual(values(output, 'edge1/Inputs/Temp_1'), [
      { value: 20.5, quality: 'good', sourceTime: TS - 1000 },
      { value: 21.25, quality: 'good', sourceTime: TS + 1000 },
    ]);
    assert.deepEqual(values(output, 'edge1/Mode'), [{ value: 'auto', quality: 'good', sourceTime: TS }]);
    assert.deepEqual(
      values(output, 'edge1/pump_1/speed').map((reading) => reading.value),
      [1450, 1500],
    );
    // Session and control metrics are not points.
    assert.deepEqual(
      [...source.topics].sort(),
      ['edge1/Inputs/Temp_1', 'edge1/Mode', 'edge1/pump_1/speed'].map((topic) => `${AGENT}/plant/${topic}`),
    );
    assert.equal(stats().sparkplug?.births, 1);
    assert.equal(stats().sparkplug?.seqGaps, 0);
    assert.equal(stats().sparkplug?.rebirthRequests, 0);
  });

  it('sparkplug - a seq gap asks for a rebirth, once; the NBIRTH starts a new sequence, 255 wraps to 0', async (t) => {
    const { output, stats } = await startSparkplug(t, broker);
    const edge = new EdgeNode(broker, 'edge2');
    const level = { name: 'level', type: 'Float', value: 1, alias: 1 } as const;
    await edge.birth([level]);
    await edge.send('NDATA', [{ alias: 1, type: 'Float', value: 2 }]);
    await edge.send('NDATA', [{ alias: 1, type: 'Float', value: 3 }], undefined, 5);
    await waitFor(() => rebirthRequests(broker, 'edge2').length === 1, 'a rebirth request on the broker');
    assert.deepEqual(
      rebirthRequests(broker, 'edge2')[0]?.map(({ name, type, value }) => ({ name, type, value })),
      [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }],
    );
    // The message after the gap is still data; a second gap at once does not ask again.
    await edge.send('NDATA', [{ alias: 1, type: 'Float', value: 4 }], undefined, 9);
    await waitFor(() => values(output, 'edge2/level').length === 4, 'four readings');
    assert.equal(stats().sparkplug?.seqGaps, 2);
    assert.equal(rebirthRequests(broker, 'edge2').length, 1);

    // The edge node answers with an NBIRTH; Sparkplug 3.0 lets it start at any seq, and 255 wraps.
    await edge.birth([{ ...level, value: 5 }], { seq: 254 });
    await edge.send('NDATA', [{ alias: 1, type: 'Float', value: 6 }]);
    await edge.send('NDATA', [{ alias: 1, type: 'Float', value: 7 }]);
    await waitFor(() => values(output, 'edge2/level').length === 7, 'seven readings');
    assert.equal(edge.seq, 0);
    assert.equal(stats().sparkplug?.seqGaps, 2);
    assert.deepEqual(
      values(output, 'edge2/level').map((reading) => reading.value),
      [1, 2, 3, 4, 5, 6, 7],
    );
  });

  it('sparkplug - deaths make the points bad, "offline"; a late NDEATH of an earlier session does not', async (t) => {
    const { output, stats } = await startSparkplug(t, broker);
    const edge = new EdgeNode(broker, 'edge3');
    await edge.birth([{ name: 'temp', type: 'Double', value: 50, alias: 1 }], { bdSeq: 7 });
    await edge.send('DBIRTH', [{ name: 'rpm', type: 'UInt16', value: 900, alias: 2 }], 'motor');
    await waitFor(() => output.count === 2, 'the births');

    await edge.send('DDEATH', [], 'motor');
    await waitFor(() => values(output, 'edge3/motor/rpm').length === 2, 'the device offline');
    assert.deepEqual(values(output, 'edge3/motor/rpm')[1], {
      value: 900,
      quality: 'bad',
      reason: 'offline',
      sourceTime: TS,
    });
    assert.equal(values(output, 'edge3/temp').length, 1, 'the node lives on');

    await edge.death(6);
    await waitFor(() => stats().sparkplug?.staleDeaths === 1, 'the stale will seen');
    await edge.death(7);
    await waitFor(() => values(output, 'edge3/temp').length === 2, 'the node offline');
    const offline = values(output, 'edge3/temp')[1];
    assert.equal(offline?.quality, 'bad');
    assert.equal(offline?.reason, 'offline');
    assert.equal(offline?.value, 50);
    assert.equal(stats().sparkplug?.deaths, 1);

    // Born again: good again.
    await edge.birth([{ name: 'temp', type: 'Double', value: 51, alias: 1 }], { bdSeq: 8 });
    await waitFor(() => values(output, 'edge3/temp').at(-1)?.quality === 'good', 'the node back');
  });

  it('sparkplug - data without a birth, or a payload that does not decode, asks for a rebirth and writes nothing', async (t) => {
    const { output, stats } = await startSparkplug(t, broker);
    const stranger = new EdgeNode(broker, 'edge4');
    await stranger.send('NDATA', [{ name: 'x', type: 'Int32', value: 1 }]);
    await waitFor(() => rebirthRequests(broker, 'edge4').length === 1, 'a rebirth for data before birth');
    await broker.publish(`spBv1.0/${GROUP}/NBIRTH/edge5`, Buffer.from([0xff, 0xff, 0xff, 0xff]));
    await waitFor(() => rebirthRequests(broker, 'edge5').length === 1, 'a rebirth for a broken birth');
    assert.equal(output.count, 0);
    assert.equal(stats().dropped['not-born'], 1);
    assert.equal(stats().dropped.undecodable, 1);
    assert.equal(stats().sparkplug?.undecodable, 1);
  });

  it('sparkplug - metric types: 64-bit, unsigned 32-bit, nulls, long strings and types without a point value', async (t) => {
    const { output, stats } = await startSparkplug(t, broker);
    const edge = new EdgeNode(broker, 'edge6');
    // Exact in a double, but past 2^53: a point can not tell it from its neighbours.
    const beyondSafe = 2 ** 53 + 2;
    await edge.birth([
      { name: 'u32', type: 'UInt32', value: 4_294_967_295 },
      { name: 'i64', type: 'Int64', value: -5 },
      { name: 'u64', type: 'UInt64', value: beyondSafe },
      { name: 'i8', type: 'Int8', value: -3 },
      { name: 'when', type: 'DateTime', value: TS },
      { name: 'ratio', type: 'Float', value: 1.5 },
      { name: 'empty', type: 'Double', value: null },
      { name: 'note', type: 'String', value: 'x'.repeat(300) },
      { name: 'blob', type: 'Bytes', value: new Uint8Array([1, 2]) },
    ]);
    await waitFor(() => output.count === 8, 'a reading per scalar metric');
    const EXPECTED: [string, Omit<PointReading, 'sourceTime'>][] = [
      ['u32', { value: 4_294_967_295, quality: 'good' }],
      ['i64', { value: -5, quality: 'good' }],
      ['u64', { value: beyondSafe, quality: 'uncertain', reason: 'integer beyond 2^53, rounded' }],
      ['i8', { value: -3, quality: 'good' }],
      ['when', { value: TS, quality: 'good' }],
      ['ratio', { value: 1.5, quality: 'good' }],
      ['empty', { value: 0, quality: 'bad', reason: 'null value' }],
      ['note', { value: '', quality: 'bad', reason: 'string longer than 256 bytes' }],
    ];
    for (const [name, expected] of EXPECTED) {
      assert.deepEqual(values(output, `edge6/${name}`), [{ ...expected, sourceTime: TS }], name);
    }
    assert.equal(stats().dropped['unsupported-metric'], 1);
  });

  it('sparkplug - an edgeNode in the config subscribes to that node alone', async (t) => {
    const { output } = await startSparkplug(t, broker, 'edge7');
    assert.deepEqual(
      [...broker.subscribed(CLIENT_ID)].sort(),
      ['DBIRTH', 'DDATA', 'DDEATH', 'NBIRTH', 'NDATA', 'NDEATH'].map(
        (type) => `spBv1.0/${GROUP}/${type}/edge7/#`,
      ),
    );
    await new EdgeNode(broker, 'edge8').birth([{ name: 'other', type: 'Int32', value: 1 }]);
    await new EdgeNode(broker, 'edge7').birth([{ name: 'mine', type: 'Int32', value: 2 }]);
    await waitFor(() => values(output, 'edge7/mine').length === 1, "the node's reading");
    await expectNever(() => values(output, 'edge8/other').length > 0, 'a reading of another node', 200);
  });
});
