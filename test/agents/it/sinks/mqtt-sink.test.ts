import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { MqttSink } from '../../../../agents/it/sinks/mqtt-sink.ts';
import { MAX_PENDING_ENTRIES } from '../../../../agents/it/sinks/mqtt-sink.ts';
import { DmzError } from '../../../../relay/protocol/errors.ts';
import { TestBroker, type TestBrokerOptions } from '../../../support/mqtt-broker.ts';
import { createTestPki } from '../../../support/test-pki.ts';
import { expectNever, waitFor } from '../../../support/wait.ts';
import {
  connectedBridge,
  holdingAcks,
  IT_AGENT,
  openBridge,
  release,
  sessionsThatSurviveRestarts,
  Subscriber,
} from './mqtt-fixture.ts';
import { gapEntry, pointEntries, pointFor } from './sink-fixture.ts';

const TEMP = 'press-7/line1/temp';
const COUNT = 'press-7/line1/count';
const LEVEL = 'press-7/line2/level';

async function startBroker(t: TestContext, options?: TestBrokerOptions): Promise<TestBroker> {
  const broker = await TestBroker.start(options);
  t.after(() => broker.stop());
  return broker;
}

function seqs(subscriber: Subscriber, topic: string): number[] {
  return subscriber.json(topic).map((payload) => payload.seq as number);
}

describe('mqtt bridge - points', () => {
  it('publishes every point at QoS 1 under its mapped topic, as JSON with value, quality, timestamp and seq', async (t) => {
    const broker = await startBroker(t);
    const subscriber = await Subscriber.connect(t, broker, 'plant/#', 'historian-reader');
    const { sink } = await connectedBridge(t, broker, {
      prefix: 'plant/dmz',
      topics: [
        { from: 'press-7/line1', to: 'plant/hall-a/press-7' },
        { from: 'press-7/line1/count', to: 'plant/counters/press-7' },
      ],
    });
    await sink.write([
      ...pointEntries(TEMP, 1, 5),
      ...pointEntries(COUNT, 1, 2),
      ...pointEntries(LEVEL, 1, 3),
    ]);
    assert.equal(sink.lastSeq(TEMP), 5);
    await waitFor(() => subscriber.messages.length === 10, 'every point at the subscriber');
    // The longest mapping wins, whole levels only; what no mapping takes gets the prefix.
    assert.deepEqual(seqs(subscriber, 'plant/hall-a/press-7/temp'), [1, 2, 3, 4, 5]);
    assert.deepEqual(seqs(subscriber, 'plant/counters/press-7'), [1, 2]);
    assert.deepEqual(seqs(subscriber, 'plant/dmz/press-7/line2/level'), [1, 2, 3]);
    assert.ok(
      subscriber.messages.every((message) => message.qos === 1),
      'QoS 1 end to end',
    );
    const [third] = subscriber.json('plant/hall-a/press-7/temp').slice(2);
    const point = pointFor(TEMP, 3);
    assert.deepEqual(third, {
      value: point.value,
      quality: 'uncertain',
      timestamp: point.sourceTime,
      seq: 3,
    });
    const [second] = subscriber.json('plant/hall-a/press-7/temp').slice(1);
    assert.deepEqual(second, {
      value: pointFor(TEMP, 2).value,
      quality: 'bad',
      reason: 'timeout',
      timestamp: pointFor(TEMP, 2).sourceTime,
      seq: 2,
    });
  });

  it("keeps each topic's last value retained for a subscriber that comes later; gaps are not retained", async (t) => {
    const broker = await startBroker(t);
    const { sink } = await connectedBridge(t, broker);
    await sink.write([...pointEntries(TEMP, 1, 4), gapEntry(TEMP, 5, 9), ...pointEntries(COUNT, 1, 7)]);
    const early = await Subscriber.connect(t, broker, 'press-7/#', 'early');
    await waitFor(() => early.messages.length === 2, 'the retained values');
    const late = await Subscriber.connect(t, broker, 'press-7/#', 'late');
    await waitFor(() => late.messages.length === 2, 'the retained values');
    for (const subscriber of [early, late]) {
      assert.deepEqual(seqs(subscriber, TEMP), [4]);
      assert.deepEqual(seqs(subscriber, COUNT), [7]);
      assert.ok(subscriber.messages.every((message) => message.retain));
    }
    // Live, a gap is a message of its own on the topic.
    const live = await Subscriber.connect(t, broker, TEMP, 'live');
    await waitFor(() => live.messages.length === 1, 'the retained value');
    await sink.write([gapEntry(TEMP, 10, 20), ...pointEntries(TEMP, 21, 1)]);
    await waitFor(() => live.messages.length === 3, 'the gap and the next point');
    assert.deepEqual(live.json(TEMP).slice(1), [
      { gap: { from: 10, to: 20, reason: 'retention' } },
      { value: pointFor(TEMP, 21).value, quality: 'good', timestamp: pointFor(TEMP, 21).sourceTime, seq: 21 },
    ]);
    assert.equal(live.on(TEMP)[1]?.retain, false);
    assert.equal(sink.lastSeq(TEMP), 21);
  });

  it('moves the cursor only once the broker acknowledged every message of a write (PUBACK)', async (t) => {
    const acks = holdingAcks();
    const broker = await startBroker(t, { aedes: acks.options });
    const { sink } = await connectedBridge(t, broker, { status: { prefix: 'status' } });
    // The bridge's own status message is one the broker holds too.
    await waitFor(() => acks.held.length === 1, 'the status message at the broker');
    let resolved = false;
    const written = sink.write(pointEntries(TEMP, 1, 3)).then(() => {
      resolved = true;
    });
    await waitFor(() => acks.held.length === 4, 'the three points at the broker');
    await expectNever(() => resolved || sink.lastSeq(TEMP) !== 0, 'the write resolved without PUBACKs', 300);
    assert.deepEqual(sink.cursors(), new Map());
    // All but the last point acknowledged: still nothing.
    for (const callback of acks.held.splice(0, 3)) callback();
    await waitFor(() => sink.stats().acknowledged === 3, 'three PUBACKs at the bridge');
    assert.equal(resolved, false);
    assert.equal(sink.lastSeq(TEMP), 0);
    release(acks);
    await written;
    assert.equal(sink.lastSeq(TEMP), 3);
  });

  it('keeps no more messages in flight than its window, and refuses writes beyond what it lets wait', async (t) => {
    const acks = holdingAcks();
    const broker = await startBroker(t, { aedes: acks.options });
    const { sink } = await connectedBridge(t, broker, { inFlight: { messages: 10 } });
    await waitFor(() => acks.held.length === 1, 'the status message at the broker');
    const writes: Promise<void>[] = [];
    for (let first = 1; first <= 100; first += 20) writes.push(sink.write(pointEntries(TEMP, first, 20)));
    await waitFor(() => acks.held.length === 10, 'a full window');
    await expectNever(
      () => acks.held.length > 10 || sink.stats().inFlight > 10,
      'more than 10 in flight',
      300,
    );
    assert.equal(sink.stats().pendingEntries, 100);
    release(acks);
    await Promise.all(writes);
    assert.equal(sink.lastSeq(TEMP), 100);
    assert.equal(sink.stats().acknowledged, 101);
  });

  it('refuses a write with AGENT_ERR_SINK_BUSY beyond what it lets wait, changing nothing', async (t) => {
    const broker = await startBroker(t);
    await broker.stop();
    const { sink } = await openBridge(t, broker);
    const pending: Promise<void>[] = [];
    const batch = 4096;
    for (let first = 1; first + batch - 1 <= MAX_PENDING_ENTRIES; first += batch) {
      const written = sink.write(pointEntries(TEMP, first, batch));
      written.catch(() => undefined);
      pending.push(written);
    }
    await assert.rejects(sink.write(pointEntries(TEMP, MAX_PENDING_ENTRIES + 1, 1)), {
      code: 'AGENT_ERR_SINK_BUSY',
    });
    assert.equal(sink.stats().refused, 1);
    assert.equal(sink.stats().pendingEntries, MAX_PENDING_ENTRIES);
    assert.equal(sink.lastSeq(TEMP), 0);
    // What waits is given up once it waited too long: the consumer replays it from the cursor.
    const [oldest] = pending;
    assert.ok(oldest !== undefined);
    await assert.rejects(oldest, { code: 'AGENT_ERR_SINK_BUSY' });
    // The next write follows the acknowledged cursor again.
    const next = sink.write(pointEntries(TEMP, 1, 1));
    next.catch(() => undefined);
    assert.equal(sink.stats().pendingEntries, 1);
  });
});

/**
 * What a consumer does with the sink, reduced to one stream: writes batches without waiting (up to
 * `depth` at a time), and after a refused write starts again from the sink's own cursor (the OT
 * log replaying from there).
 */
async function streamInto(
  sink: MqttSink,
  topic: string,
  total: number,
  batch: number,
  depth: number,
): Promise<number> {
  let next = sink.lastSeq(topic) + 1;
  let refusals = 0;
  let inFlight: Promise<void>[] = [];
  while (sink.lastSeq(topic) < total) {
    if (next > total || inFlight.length >= depth) {
      const outcome = await Promise.allSettled(inFlight);
      inFlight = [];
      if (outcome.some((result) => result.status === 'rejected')) {
        refusals++;
        await new Promise((resolve) => setTimeout(resolve, 100));
        next = sink.lastSeq(topic) + 1;
      }
      continue;
    }
    const count = Math.min(batch, total - next + 1);
    const written = sink.write(pointEntries(topic, next, count));
    written.catch(() => undefined);
    inFlight.push(written);
    next += count;
  }
  return refusals;
}

describe('mqtt bridge - broker outage', () => {
  it('loses nothing when the broker stops mid-stream and comes back on the same port', async (t) => {
    // The broker's sessions survive its restart, as mosquitto's with persistence on do.
    const persistence = sessionsThatSurviveRestarts();
    const broker = await startBroker(t, { aedes: { persistence } });
    const subscriber = await Subscriber.connect(t, broker, 'press-7/#', 'historian-reader');
    const { sink } = await connectedBridge(t, broker, { retain: false });
    const total = 3000;
    const streaming = streamInto(sink, TEMP, total, 50, 4);
    await waitFor(() => sink.lastSeq(TEMP) >= 1000, 'a third of the stream acknowledged', 30_000);
    await broker.stop();
    assert.equal(sink.stats().connected, false);
    const heldAtOutage = sink.lastSeq(TEMP);
    await expectNever(
      () => sink.lastSeq(TEMP) !== heldAtOutage,
      'the cursor moved with the broker down',
      300,
    );
    await broker.restart();
    await streaming;
    assert.equal(sink.lastSeq(TEMP), total);
    // Every point has its PUBACK from the broker by now: what the subscriber still lacks after the
    // wait is the broker's to deliver (its session across the restart), named so a failure says so.
    await waitFor(
      () => new Set(seqs(subscriber, TEMP)).size === total,
      'every point at the subscriber',
      30_000,
    ).catch((error: unknown) => {
      const have = new Set(seqs(subscriber, TEMP));
      const missing = Array.from({ length: total }, (_, index) => index + 1).filter((seq) => !have.has(seq));
      throw new Error(
        `${(error as Error).message}: ${missing.length} acknowledged points never reached the subscriber (first ${missing.slice(0, 10).join(', ')}), held at the outage ${heldAtOutage}`,
      );
    });
    const received = seqs(subscriber, TEMP);
    const unique = [...new Set(received)].sort((a, b) => a - b);
    assert.deepEqual(
      unique,
      Array.from({ length: total }, (_, index) => index + 1),
    );
    const stats = sink.stats();
    assert.ok(stats.connections >= 2, 'connected again');
    // At least once: repeats are possible, at most what was in flight at the break and replayed.
    assert.ok(received.length - total <= stats.interrupted + stats.expired * 50 + 4 * 50, 'repeats bounded');
  });

  it('keeps its acknowledged cursors and log epochs across a reopen, and names a damaged cursor file', async (t) => {
    const broker = await startBroker(t);
    const first = await connectedBridge(t, broker);
    const epochs = ['00000000000000a1', '00000000000000a0'];
    await first.sink.noteLogEpochs('press-7', epochs);
    await first.sink.write(pointEntries(TEMP, 1, 7));
    assert.deepEqual(first.sink.logEpochs('press-7'), epochs);
    await first.sink.close();
    const again = await openBridge(t, broker, {}, first.stateDir);
    assert.equal(again.sink.lastSeq(TEMP), 7);
    assert.deepEqual(again.sink.logEpochs('press-7'), epochs, 'the OT log epochs kept with the cursors');
    await again.sink.close();
    const { writeFile } = await import('node:fs/promises');
    await writeFile(`${first.stateDir}/cursors.json`, '{"version":1,"cursors":{"press-7/temp":-1}}');
    await assert.rejects(openBridge(t, broker, {}, first.stateDir), (error: DmzError) => {
      assert.equal(error.code, 'AGENT_ERR_SINK_CORRUPT');
      assert.match(error.message, /cursors\.json/);
      return true;
    });
  });
});

describe('mqtt bridge - status topics', () => {
  it("says online and offline per OT agent, retained, and the bridge's own offline is its will", async (t) => {
    const persistence = sessionsThatSurviveRestarts();
    const broker = await startBroker(t, { aedes: { persistence } });
    const watcher = await Subscriber.connect(t, broker, 'dmz/status/#', 'watcher');
    const bridge = await openBridge(t, broker);
    bridge.peers.set('press-7', true);
    bridge.peers.set('press-9', false);
    const BRIDGE = `dmz/status/${IT_AGENT}`;
    await waitFor(() => watcher.texts('dmz/status/press-9').length === 1, "the OT agents' states");
    assert.deepEqual(watcher.texts(BRIDGE), ['online']);
    assert.deepEqual(watcher.texts('dmz/status/press-7'), ['online']);
    assert.deepEqual(watcher.texts('dmz/status/press-9'), ['offline']);
    bridge.peers.set('press-7', false);
    await waitFor(() => watcher.texts('dmz/status/press-7').length === 2, 'press-7 going offline');
    assert.deepEqual(watcher.texts('dmz/status/press-7'), ['online', 'offline']);
    // A connection cut without DISCONNECT: the broker sends the will; the bridge comes back online.
    broker.dropConnections();
    // The will may reach the broker before the next connection's online or after it; the bridge
    // hears a late one and says online again, so the last word is online either way.
    await waitFor(
      () => watcher.texts(BRIDGE).includes('offline') && watcher.texts(BRIDGE).at(-1) === 'online',
      'the will, then online again',
      15_000,
    );
    // Retained: a newcomer learns every state at once.
    const late = await Subscriber.connect(t, broker, 'dmz/status/#', 'late-watcher');
    await waitFor(() => late.messages.length >= 3, 'the retained states');
    assert.ok(late.messages.slice(0, 3).every((message) => message.retain));
    assert.equal(late.texts(BRIDGE)[0], 'online');
    // A clean stop says offline for everyone itself (a DISCONNECT sends no will).
    bridge.peers.set('press-7', true);
    await waitFor(() => late.texts('dmz/status/press-7').length === 2, 'press-7 back online');
    await bridge.sink.close();
    await waitFor(() => late.texts(BRIDGE).at(-1) === 'offline', 'the bridge offline');
    assert.deepEqual([...new Set(late.texts(BRIDGE))], ['online', 'offline']);
    assert.deepEqual(late.texts('dmz/status/press-7'), ['offline', 'online', 'offline']);
  });
});

describe('mqtt bridge - mqtts', () => {
  let dir: string;
  let broker: TestBroker;
  const logins: string[] = [];
  before(async () => {
    const pki = await createTestPki();
    dir = await mkdtemp(join(tmpdir(), 'bridge-tls-'));
    const client = await pki.issueAgent('it', IT_AGENT);
    await writeFile(join(dir, 'ca.pem'), pki.ca.certPem);
    await writeFile(join(dir, 'client.pem'), client.certPem);
    await writeFile(join(dir, 'client.key'), client.keyPem, { mode: 0o600 });
    await writeFile(join(dir, 'wrong-ca.pem'), pki.relay.certPem);
    await writeFile(join(dir, 'password'), 's3cret\n', { mode: 0o600 });
    broker = await TestBroker.start({
      tls: { cert: pki.relay.certPem, key: pki.relay.keyPem, ca: pki.ca.certPem, requestCert: true },
      aedes: {
        authenticate: (_client, username, password, done) => {
          logins.push(`${username ?? ''}:${password?.toString() ?? ''}`);
          done(null, username === 'bridge' && password?.toString() === 's3cret');
        },
      },
    });
  });
  after(async () => {
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('publishes over TLS with the configured CA, client certificate, user and password file', async (t) => {
    const { sink } = await connectedBridge(t, broker, {
      broker: {
        url: broker.url,
        ca: join(dir, 'ca.pem'),
        cert: join(dir, 'client.pem'),
        key: join(dir, 'client.key'),
        username: 'bridge',
        passwordFile: join(dir, 'password'),
      },
    });
    await sink.write(pointEntries(TEMP, 1, 3));
    assert.equal(sink.lastSeq(TEMP), 3);
    assert.deepEqual(
      broker.published
        .filter((message) => message.topic === TEMP)
        .map((message) => JSON.parse(message.payload.toString()) as { seq: number })
        .map((payload) => payload.seq),
      [1, 2, 3],
    );
    assert.equal(logins.at(-1), 'bridge:s3cret', 'one trailing newline is not the password');
  });

  it('refuses a broker whose certificate does not chain to the configured CA, and publishes nothing', async (t) => {
    const { sink } = await openBridge(t, broker, {
      broker: {
        url: broker.url,
        ca: join(dir, 'wrong-ca.pem'),
        cert: join(dir, 'client.pem'),
        key: join(dir, 'client.key'),
      },
    });
    await waitFor(() => /certificate|issuer/i.test(sink.stats().lastError ?? ''), 'the refusal reported');
    assert.equal(sink.stats().connections, 0);
    const written = sink.write(pointEntries(TEMP, 1, 1));
    written.catch(() => undefined);
    await expectNever(() => sink.lastSeq(TEMP) !== 0, 'a point held without a broker', 300);
  });
});
