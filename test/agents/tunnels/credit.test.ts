/**
 * The arithmetic both tunnel ends share: send credit, the receive window and its grants, and a
 * service's bytes-per-second budget (on a manual clock).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ByteBudget } from '../../../agents/tunnels/byte-budget.ts';
import { ReceiveWindow, SendCredit } from '../../../agents/tunnels/credit.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { MAX_STREAM_WINDOW_BYTES, MIN_STREAM_FRAME_CREDIT } from '../../../relay/protocol/streams.ts';
import { ManualClock } from '../../support/manual-clock.ts';

describe('tunnel credit', () => {
  it('sends no more than was granted, and never holds more than the window', () => {
    const credit = new SendCredit();
    assert.equal(credit.take(1000), 0, 'nothing before a grant');
    credit.grant(3000);
    assert.equal(credit.take(2000), 2000);
    assert.equal(credit.take(2000), 1000);
    assert.equal(credit.available, 0);
    credit.grant(MAX_STREAM_WINDOW_BYTES);
    credit.grant(MAX_STREAM_WINDOW_BYTES);
    assert.equal(credit.available, MAX_STREAM_WINDOW_BYTES);
  });

  it('spends at least MIN_STREAM_FRAME_CREDIT a frame, so credit bounds the frames in flight', () => {
    const credit = new SendCredit();
    credit.grant(2 * MIN_STREAM_FRAME_CREDIT + 10);
    assert.equal(credit.take(1), 1);
    assert.equal(credit.take(12), 12);
    assert.equal(credit.available, 10);
    assert.equal(credit.take(1), 0, 'less than one frame of credit left: nothing to send');
    const window = new ReceiveWindow(2 * MIN_STREAM_FRAME_CREDIT);
    assert.equal(window.received(1), MIN_STREAM_FRAME_CREDIT);
    assert.equal(window.received(0), 0, 'the end-only frame costs nothing');
    assert.equal(window.buffered, MIN_STREAM_FRAME_CREDIT);
    window.received(1);
    assert.throws(
      () => window.received(1),
      (error: unknown) => error instanceof DmzError && error.code === 'AGENT_ERR_TUNNEL_PROTOCOL',
    );
  });

  it('grants again only once half the window is consumed, and exactly what was consumed', () => {
    const window = new ReceiveWindow(1000);
    window.received(600);
    assert.equal(window.buffered, 600);
    assert.equal(window.consumed(400), 0, 'under half: not worth a frame');
    assert.equal(window.buffered, 200);
    assert.equal(window.consumed(200), 600);
    assert.equal(window.buffered, 0);
    // The peer may now send the full window again, not a byte more.
    window.received(1000);
    assert.throws(
      () => window.received(1),
      (error: unknown) => error instanceof DmzError && error.code === 'AGENT_ERR_TUNNEL_PROTOCOL',
    );
  });

  it('paces a service to its bytes per second, with one second of burst', async () => {
    const clock = new ManualClock(0);
    const budget = new ByteBudget(1000, clock.now);
    assert.equal(budget.take(1000), 0, 'the first second is there at once');
    assert.equal(budget.take(500), 500, 'then half a second of debt');
    await clock.advance(500);
    assert.equal(budget.take(0), 0);
    await clock.advance(10_000);
    assert.equal(budget.take(1500), 500, 'idle time refills one second at most');
  });
});
