/**
 * The OT log epochs the MQTT bridge keeps (sink.ts logEpochs), against a real broker whose PUBACKs
 * the test holds: an epoch settles in order with the writes around it, so neither what the bridge
 * holds nor its cursor file ever has a point of a newer epoch than it names, or names one before
 * the writes ahead of it are acknowledged.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { CURSOR_FILE } from '../../../../agents/it/sinks/mqtt/cursor-file.ts';
import type { DmzError } from '../../../../relay/protocol/errors.ts';
import { TestBroker } from '../../../support/mqtt-broker.ts';
import { waitFor } from '../../../support/wait.ts';
import { connectedBridge, holdingAcks, openBridge, type OpenedBridge } from './mqtt-fixture.ts';
import { pointEntries } from './sink-fixture.ts';

const TEMP = 'press-7/line1/temp';
const OLD = ['00000000000000e1'];
const NEW = ['00000000000000e2', '00000000000000e1'];

/** A bridge whose broker holds every PUBACK until the test hands it out; its own status message out of the way. */
async function heldBridge(t: TestContext) {
  const acks = holdingAcks();
  const broker = await TestBroker.start({ aedes: acks.options });
  t.after(() => broker.stop());
  const bridge = await connectedBridge(t, broker);
  await waitFor(() => acks.held.length === 1, 'the status message at the broker');
  acknowledge(acks.held, 1);
  return { acks, broker, bridge };
}

function acknowledge(held: (() => void)[], count: number): void {
  for (const callback of held.splice(0, count)) callback();
}

/** Closes the bridge (the broker acknowledging its last messages), then opens it again on its directory. */
async function reopened(
  t: TestContext,
  broker: TestBroker,
  bridge: OpenedBridge,
  acks: ReturnType<typeof holdingAcks>,
) {
  acks.holding.on = false;
  await bridge.sink.close();
  return (await openBridge(t, broker, {}, bridge.stateDir)).sink;
}

describe('mqtt bridge - the OT log epochs, in order with the writes', () => {
  it('holds an epoch noted behind unacknowledged writes only once they are acknowledged, before the writes after it', async (t) => {
    const { acks, broker, bridge } = await heldBridge(t);
    const { sink } = bridge;
    await sink.noteLogEpochs('press-7', OLD);
    assert.deepEqual(sink.logEpochs('press-7'), OLD, 'with nothing ahead of it, held at once');

    const before = sink.write(pointEntries(TEMP, 1, 3));
    let noted = false;
    const note = sink.noteLogEpochs('press-7', NEW).then(() => (noted = true));
    const afterIt = sink.write(pointEntries(TEMP, 4, 2));
    afterIt.catch(() => undefined);
    await waitFor(() => acks.held.length === 5, 'the five points at the broker');
    assert.deepEqual(sink.logEpochs('press-7'), OLD, 'not held while the writes before it wait');
    assert.equal(noted, false);

    acknowledge(acks.held, 3);
    await before;
    await note;
    assert.deepEqual(sink.logEpochs('press-7'), NEW, 'held with the write before it');
    assert.equal(sink.lastSeq(TEMP), 3, 'the write after it still waits for its PUBACKs');

    // Closed with the last write unacknowledged: the file has the epoch and the cursor it goes with.
    const again = await reopened(t, broker, bridge, acks);
    await assert.rejects(afterIt, { code: 'AGENT_ERR_SINK_CLOSED' });
    assert.equal(again.lastSeq(TEMP), 3);
    assert.deepEqual(again.logEpochs('press-7'), NEW);
  });

  it('saves no epoch whose writes before it the broker never acknowledged', async (t) => {
    const { acks, broker, bridge } = await heldBridge(t);
    const { sink } = bridge;
    await sink.noteLogEpochs('press-7', OLD);
    const before = sink.write(pointEntries(TEMP, 1, 3));
    const note = sink.noteLogEpochs('press-7', NEW);
    before.catch(() => undefined);
    note.catch(() => undefined);
    await waitFor(() => acks.held.length === 3, 'the three points at the broker');

    const again = await reopened(t, broker, bridge, acks);
    await assert.rejects(note, { code: 'AGENT_ERR_SINK_CLOSED' });
    assert.equal(again.lastSeq(TEMP), 0);
    assert.deepEqual(again.logEpochs('press-7'), OLD, 'the epoch kept is the one its cursors came from');
    const saved = JSON.parse(await readFile(join(bridge.stateDir, CURSOR_FILE), 'utf8')) as unknown;
    assert.deepEqual(saved, { version: 1, bdSeq: null, cursors: {}, origins: { 'press-7': OLD } });
  });

  it('refuses an epoch list a cursor cannot carry, changing nothing, and a cursor file whose epochs are damaged', async (t) => {
    const { acks, broker, bridge } = await heldBridge(t);
    const { sink } = bridge;
    await sink.noteLogEpochs('press-7', OLD);
    const refused: [string, readonly string[]][] = [
      ['press-7', []],
      ['press-7', ['XYZ']],
      ['press-7', ['00000000000000e1', '00000000000000e1']],
      ['press-7', Array.from({ length: 9 }, (_, index) => index.toString(16).padStart(16, '0'))],
      ['press/7', NEW],
    ];
    for (const [agent, epochs] of refused) {
      await assert.rejects(sink.noteLogEpochs(agent, epochs), { code: 'AGENT_ERR_SINK_ENTRY' }, agent);
    }
    assert.deepEqual(sink.logEpochs('press-7'), OLD);
    assert.deepEqual(sink.logEpochs('press/7'), []);
    acks.holding.on = false;
    await sink.close();

    const path = join(bridge.stateDir, CURSOR_FILE);
    await writeFile(path, '{"version":1,"bdSeq":null,"cursors":{},"origins":{"press-7":["e1"]}}');
    await assert.rejects(openBridge(t, broker, {}, bridge.stateDir), (error: DmzError) => {
      assert.equal(error.code, 'AGENT_ERR_SINK_CORRUPT');
      assert.match(error.message, /cursors\.json/);
      return true;
    });
  });
});
