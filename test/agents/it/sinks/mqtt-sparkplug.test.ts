/**
 * The bridge as a Sparkplug B edge node, read back as a host application would: every payload
 * decoded with Eclipse Tahu's sparkplug-payload, the reference implementation.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { connectAsync } from 'mqtt';
import { get as getSparkplugCodec } from 'sparkplug-payload';
import type { UMetric, UPayload } from 'sparkplug-payload/lib/sparkplugbpayload.js';
import { TestBroker } from '../../../support/mqtt-broker.ts';
import { waitFor } from '../../../support/wait.ts';
import { connectedBridge, IT_AGENT, sessionsThatSurviveRestarts, Subscriber } from './mqtt-fixture.ts';
import type { Point } from '../../../../agents/points/point.ts';
import type { SinkEntry } from '../../../../agents/it/sinks/sink.ts';

const codec = getSparkplugCodec('spBv1.0');
const GROUP = 'plant1';
const NODE = `spBv1.0/${GROUP}`;

interface Decoded {
  readonly topic: string;
  readonly payload: UPayload;
}

/** What the edge node published (a host subscribed to spBv1.0/# also gets the commands it sends). */
function decoded(subscriber: Subscriber): Decoded[] {
  return edgeMessages(subscriber).map((message) => ({
    topic: message.topic,
    payload: codec?.decodePayload(message.payload) as UPayload,
  }));
}

function edgeMessages(subscriber: Subscriber): Subscriber['messages'] {
  return subscriber.messages.filter((message) => !message.topic.includes('/NCMD/'));
}

/** A uint64 field as a number: Tahu hands them over as Long objects. */
function numberOf(value: unknown): number {
  if (typeof value === 'number') return value;
  return (value as { toNumber(): number }).toNumber();
}

function metric(payload: UPayload, name: string): UMetric | undefined {
  return payload.metrics?.find((candidate) => candidate.name === name);
}

async function startBroker(t: TestContext): Promise<TestBroker> {
  // Sessions survive a connection cut, so the host sees the will that a cut sends.
  const broker = await TestBroker.start({ aedes: { persistence: sessionsThatSurviveRestarts() } });
  t.after(() => broker.stop());
  return broker;
}

const TIME = Date.parse('2026-12-01T11:00:00.000Z');

/** Points of `topic` as a number stream: value `seq * 1.5`, bad quality where `bad` says. */
function numbers(
  topic: string,
  first: number,
  count: number,
  bad: (seq: number) => boolean = () => false,
): SinkEntry[] {
  return Array.from({ length: count }, (_, index) => {
    const seq = first + index;
    const point: Point = bad(seq)
      ? { topic, seq, value: seq * 1.5, quality: 'bad', reason: 'timeout', sourceTime: TIME + seq }
      : { topic, seq, value: seq * 1.5, quality: 'good', sourceTime: TIME + seq };
    return { kind: 'point', point };
  });
}

const TEMP = 'press-7/line1/temp';
const COUNT = 'press-7/line1/count';
const FLOW = 'press-9/flow';

function topicsAndSeqs(messages: readonly Decoded[]): [string, number | undefined][] {
  return messages.map(({ topic, payload }) => [
    topic.slice(NODE.length + 1),
    payload.seq === undefined || payload.seq === null ? undefined : numberOf(payload.seq),
  ]);
}

describe('mqtt bridge - sparkplug B', () => {
  it('is an edge node: NBIRTH with bdSeq, a DBIRTH per OT agent with names and aliases, DDATA by alias, seq in order', async (t) => {
    const broker = await startBroker(t);
    const host = await Subscriber.connect(t, broker, 'spBv1.0/#', 'scada-host');
    const bridge = await connectedBridge(t, broker, { sparkplug: { group: GROUP } });
    await waitFor(() => edgeMessages(host).length === 1, 'the NBIRTH');
    await bridge.sink.write([
      ...numbers(TEMP, 1, 3, (seq) => seq === 2),
      ...numbers(COUNT, 1, 1),
      ...numbers(FLOW, 1, 1),
    ]);
    assert.equal(bridge.sink.lastSeq(TEMP), 3);
    await waitFor(() => edgeMessages(host).length === 5, 'births and data');
    const messages = decoded(host);
    assert.deepEqual(topicsAndSeqs(messages), [
      [`NBIRTH/${IT_AGENT}`, 0],
      [`DBIRTH/${IT_AGENT}/press-7`, 1],
      [`DDATA/${IT_AGENT}/press-7`, 2],
      [`DBIRTH/${IT_AGENT}/press-9`, 3],
      [`DDATA/${IT_AGENT}/press-9`, 4],
    ]);
    assert.ok(edgeMessages(host).every((message) => message.qos === 1 && !message.retain));
    const [nbirth, dbirth, ddata] = messages.map(({ payload }) => payload) as [UPayload, UPayload, UPayload];
    assert.equal(numberOf(metric(nbirth, 'bdSeq')?.value), 0);
    assert.equal(metric(nbirth, 'Node Control/Rebirth')?.value, false);
    // The birth names every metric with its alias and type; the data uses the aliases alone.
    const temp = metric(dbirth, 'line1/temp');
    const count = metric(dbirth, 'line1/count');
    assert.equal(temp?.type, 'Double');
    assert.equal(temp?.value, 1.5);
    assert.equal(count?.type, 'Double');
    const [tempAlias, countAlias] = [numberOf(temp?.alias), numberOf(count?.alias)];
    assert.notEqual(tempAlias, countAlias);
    const data = ddata.metrics ?? [];
    assert.ok(
      data.every((entry) => typeof entry.name !== 'string' || entry.name === ''),
      'no names in DDATA',
    );
    assert.deepEqual(
      data.map((entry) => [numberOf(entry.alias), entry.value, numberOf(entry.timestamp)]),
      [
        [tempAlias, 1.5, TIME + 1],
        [tempAlias, 3, TIME + 2],
        [tempAlias, 4.5, TIME + 3],
        [countAlias, 1.5, TIME + 1],
      ],
    );
    // Quality as Ignition reads it: bad is 0, and the next good value says 192 again.
    assert.deepEqual(
      data.slice(0, 3).map((entry) => entry.properties?.Quality?.value),
      [undefined, 0, 192],
    );
  });

  it('births a device again for a new metric, answers a rebirth request, and sends DDEATH for an OT agent gone', async (t) => {
    const broker = await startBroker(t);
    const host = await Subscriber.connect(t, broker, 'spBv1.0/#', 'scada-host');
    const bridge = await connectedBridge(t, broker, { sparkplug: { group: GROUP, edgeNode: 'dmz-bridge' } });
    bridge.peers.set('press-7', true);
    bridge.peers.set('press-9', true);
    await bridge.sink.write([...numbers(TEMP, 1, 1), ...numbers(FLOW, 1, 1)]);
    await waitFor(() => edgeMessages(host).length === 5, 'the first births and data');
    // A metric no birth declared needs a new DBIRTH, with every metric of the device.
    await bridge.sink.write(numbers(COUNT, 1, 1));
    await waitFor(() => edgeMessages(host).length === 7, 'a new DBIRTH and the data');
    const rebirth = decoded(host).slice(5);
    assert.deepEqual(topicsAndSeqs(rebirth), [
      ['DBIRTH/dmz-bridge/press-7', 5],
      ['DDATA/dmz-bridge/press-7', 6],
    ]);
    const names = (rebirth[0]?.payload.metrics ?? []).map((entry) => entry.name).sort();
    assert.deepEqual(names, ['line1/count', 'line1/temp']);
    // A host that lost track asks for a rebirth: NBIRTH (seq 0, same bdSeq) and every online device.
    const scada = await connectAsync(broker.url, { clientId: 'scada-cmd', protocolVersion: 4 });
    t.after(() => scada.endAsync(true));
    const command = codec?.encodePayload({
      timestamp: Date.now(),
      metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }],
    }) as Uint8Array;
    await scada.publishAsync(`${NODE}/NCMD/dmz-bridge`, Buffer.from(command), { qos: 1 });
    await waitFor(() => edgeMessages(host).length === 10, 'the rebirth');
    const answer = decoded(host).slice(7);
    assert.deepEqual(topicsAndSeqs(answer), [
      ['NBIRTH/dmz-bridge', 0],
      ['DBIRTH/dmz-bridge/press-7', 1],
      ['DBIRTH/dmz-bridge/press-9', 2],
    ]);
    assert.equal(numberOf(metric(answer[0]?.payload ?? {}, 'bdSeq')?.value), 0);
    assert.equal(metric(answer[1]?.payload ?? {}, 'line1/count')?.value, 1.5);
    assert.equal(bridge.sink.stats().sparkplug?.rebirthRequests, 1);
    // An OT agent whose session ends is a dead device.
    bridge.peers.set('press-9', false);
    await waitFor(() => edgeMessages(host).length === 11, 'the DDEATH');
    assert.deepEqual(topicsAndSeqs(decoded(host).slice(10)), [['DDEATH/dmz-bridge/press-9', 3]]);
  });

  it('registers an NDEATH with the bdSeq of each connection as its will, and sends it itself at a clean stop', async (t) => {
    const broker = await startBroker(t);
    const host = await Subscriber.connect(t, broker, 'spBv1.0/#', 'scada-host');
    const bridge = await connectedBridge(t, broker, { sparkplug: { group: GROUP } });
    await waitFor(() => edgeMessages(host).length === 1, 'the NBIRTH');
    broker.dropConnections();
    // The broker sends the will when it notices the cut, which may be after the next connection's
    // NBIRTH (MQTT orders messages per client, not a will against the next connection's): the
    // bdSeq is how a host tells them apart. (The host may also get the first NBIRTH again: its
    // PUBACK may have been lost in the cut.)
    const bdSeqOf = (message: Decoded | undefined) =>
      numberOf(metric(message?.payload ?? {}, 'bdSeq')?.value);
    const of = (type: string) =>
      decoded(host).filter((message) => message.topic === `${NODE}/${type}/${IT_AGENT}`);
    await waitFor(
      () => of('NDEATH').length === 1 && of('NBIRTH').some((birth) => bdSeqOf(birth) === 1),
      'the will and the next NBIRTH',
      15_000,
    );
    assert.equal(bdSeqOf(of('NBIRTH')[0]), 0);
    assert.equal(bdSeqOf(of('NDEATH')[0]), 0, "the will is the first connection's death");
    await bridge.sink.close();
    await waitFor(() => of('NDEATH').length === 2, 'the NDEATH of the clean stop');
    assert.equal(bdSeqOf(of('NDEATH')[1]), 1);
  });
});
