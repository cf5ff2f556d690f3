import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  assertRun,
  createAgentPlant,
  fileConsumerAgent,
  readAgentStatus,
  simulatorAgent,
  sinkLinesByTopic,
  startAgent,
  type AgentPlant,
} from '../../support/agent-plant.ts';
import type { KillableProcess } from '../../support/killable-process.ts';
import { readMetric } from '../../support/metrics.ts';
import { waitFor } from '../../support/wait.ts';

/** The smallest queue the relay allows: whatever a stalled reader cannot take is dropped. */
const QUEUE_BYTES = 64 * 1024;
const BACKLOG_STREAMS = 100;
const BACKLOG_READINGS = 2_000;
/** 200,000 points of ~75 bytes: 15 MB, far beyond the socket buffers (~4 MB) of a stalled reader. */
const BACKLOG = BACKLOG_STREAMS * BACKLOG_READINGS;
const LIVE_TOPIC = 'press-7/slow/temp';
/** How long the consumer stalls in the middle of its replay round. */
const STALL_MS = 3_000;
const LONG_TAG = (letter: string) => letter.repeat(64);

describe('dmz-agent run: a consumer that stalls during its replay round', () => {
  let plant: AgentPlant;
  let consumer: KillableProcess | undefined;

  before(async () => {
    plant = await createAgentPlant({
      limits: { maxQueuedBytesPerConsumer: QUEUE_BYTES, slowConsumerGraceMs: 60_000 },
    });
  });
  after(async () => {
    consumer?.killNow();
    await plant.close();
  });

  it('catches up although the relay dropped the rest of the round and its end marker, while live points keep coming', async () => {
    const state = join(plant.dir, 'historian-state');
    const sinkDir = join(plant.dir, 'historian-sink');
    const ot = await startAgent(
      plant.config(
        simulatorAgent(
          await plant.enroll('ot', 'press-7'),
          join(plant.dir, 'ot-state'),
          {
            name: 'backlog',
            interval: '1ms',
            batch: 20,
            limit: BACKLOG_READINGS,
            generate: {
              count: BACKLOG_STREAMS,
              signal: 'step',
              period: '1ms',
              values: [LONG_TAG('A'), LONG_TAG('B')],
            },
          },
          // A point every 100 ms for ever: deliveries never pause long enough for a round to time out.
          { name: 'slow', interval: '100ms', points: [{ name: 'temp', signal: 'sine' }] },
        ),
      ),
    );
    try {
      await waitFor(() => (ot.status().ot?.pointsLogged ?? 0) >= BACKLOG, 'the backlog logged', 20_000, 50);
      const config = await plant.configFile(
        'historian.yaml',
        // One round for the whole backlog: it cannot fit what a stalled reader's buffers hold.
        fileConsumerAgent(await plant.enroll('it', 'historian'), state, sinkDir, 'press-7', {
          replayWindow: 1_048_576,
        }),
      );
      consumer = await plant.agentProcess('historian', config);
      const roundsBefore = ot.status().ot?.replay.rounds ?? 0;
      const incarnation = consumer.start();
      await waitFor(() => consumer?.stderrIncludes('session open; resuming'), 'the session open', 20_000, 5);
      // The consumer logs that line before its resume request leaves: stopped in between (a busy
      // machine), it would never ask for the round, and the relay would have nothing to drop.
      await waitFor(
        () => (ot.status().ot?.replay.rounds ?? 0) > roundsBefore,
        'the replay round begun',
        20_000,
        1,
      );

      // It stalls as its round begins: the relay drops the round's rest, end marker and all.
      process.kill(incarnation.pid, 'SIGSTOP');
      const stalledAt = Date.now();
      try {
        await waitFor(
          async () => (await readMetric(plant.relay!, 'dmz_relay_points_dropped_total')) > 0,
          'the relay dropping for the stalled consumer',
          // The round's first ~4 MB fill the stalled reader's socket buffers; a busy machine sends them slowly.
          20_000,
        );
        // The stall itself: long enough for the whole round to be sent and dropped meanwhile.
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, STALL_MS - (Date.now() - stalledAt))));
      } finally {
        process.kill(incarnation.pid, 'SIGCONT');
      }

      // Live points keep coming every 100 ms; the consumer must not wait for a marker that is gone.
      const liveAtResume =
        ot.status().ot?.streams.find((stream) => stream.topic === LIVE_TOPIC)?.lastSeq ?? 0;
      await waitFor(
        async () => {
          const status = (await readAgentStatus(state))?.it?.consumers[0];
          const live = status?.streams.find((stream) => stream.topic === LIVE_TOPIC)?.lastSeq ?? 0;
          return (status?.pointsWritten ?? 0) >= BACKLOG + liveAtResume && live > liveAtResume;
        },
        'the backlog and the live points since in the sink',
        // Through the smallest queue the relay allows, catching up is slow: each round overflows it
        // again, is cut short by a drop and asked for anew (measured: ~9,000 points a second, the OT
        // agent replaying each point ~5 times, ~200 rounds; 20-25 s for this backlog on a quiet
        // machine). Liveness is the claim here, not speed: a consumer waiting on a lost marker
        // would make no progress at all.
        60_000,
        250,
      );
      assert.deepEqual(await consumer.stop(), { code: 0, signal: null });
    } finally {
      await ot.stop();
    }

    const stats = (await readAgentStatus(state))?.it?.consumers[0];
    assert.ok((stats?.droppedNotices ?? 0) > 0, 'the relay told the consumer it dropped points');
    const byTopic = await sinkLinesByTopic(sinkDir);
    assert.equal(byTopic.size, BACKLOG_STREAMS + 1);
    for (const [topic, lines] of byTopic) {
      const seqs = lines.map((line) => line['seq'] as number);
      assertRun(seqs, 1, topic === LIVE_TOPIC ? seqs.length : BACKLOG_READINGS, topic);
    }
  });
});
