import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { RawAgent } from '../../support/raw-agent.ts';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';

const SESSIONS_PER_AGENT = 8;
const SESSIONS_PER_PAIR = 2;
const PENDING_OFFERS = 3;
const OFFER_TIMEOUT_MS = 400;
/** The relay checks offers about once a second (relay.ts MAX_TICK_MS), plus scheduling slack. */
const OFFER_CHECK_SLACK_MS = 1_500;

/** Finding 5 of the security review: one IT agent could fill an OT agent's session slots. */
describe('relay/server session limits per pair', () => {
  let pki: TestPki;
  let t: TestRelay;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki, {
      limits: {
        maxSessionsPerAgent: SESSIONS_PER_AGENT,
        maxSessionsPerPair: SESSIONS_PER_PAIR,
        maxPendingOffersPerAgent: PENDING_OFFERS,
      },
      sessions: { offerTimeoutMs: OFFER_TIMEOUT_MS },
      policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'] }],
    });
  });
  after(() => t.stop());

  it('relay - one IT agent fills its pair quota with an OT agent; a second IT agent still opens a session with it', async () => {
    await t.connect('ot', 'press-9');
    await t.connect('ot', 'press-7');
    const hog = await t.connect('it', 'hog');
    const dashboard = await t.connect('it', 'dashboard');
    for (let n = 0; n < SESSIONS_PER_PAIR; n++) await hog.client.openSession('press-9', 'press-9/#');
    await assert.rejects(hog.client.openSession('press-9', 'press-9/#'), { code: 'RELAY_ERR_TOO_MANY' });
    // The quota is the pair's: the same IT agent still reaches other OT agents, and others reach press-9.
    await hog.client.openSession('press-7', 'press-7/#');
    const { session } = await dashboard.client.openSession('press-9', 'press-9/#');
    assert.ok(session > 0);
  });

  it('relay - unanswered offers are bounded per OT agent, end after offerTimeoutMs, and free their slots', async () => {
    const credentials = await pki.issueAgent('ot', 'press-10');
    const silent = await RawAgent.open({ url: t.url, caPem: pki.ca.certPem, ...credentials });
    try {
      const hog = await t.connect('it', 'offer-hog');
      const other = await t.connect('it', 'offer-other');
      const late = await t.connect('it', 'offer-late');
      const offeredAt = Date.now();
      // The pending offers: one IT agent's whole pair quota, and another's for the rest. Each
      // outcome is awaited from the start, as they all end at about the same moment.
      const outcomes = Promise.all(
        [
          ...Array.from({ length: SESSIONS_PER_PAIR }, () =>
            hog.client.openSession('press-10', 'press-10/#'),
          ),
          ...Array.from({ length: PENDING_OFFERS - SESSIONS_PER_PAIR }, () =>
            other.client.openSession('press-10', 'press-10/#'),
          ),
        ].map((offer) =>
          offer.then(
            () => 'accepted',
            (error: unknown) => (error instanceof DmzError ? error.code : String(error)),
          ),
        ),
      );
      await silent.next(
        'sessionOpen',
        () => silent.frames.filter((frame) => frame.type === 'sessionOpen').length === PENDING_OFFERS,
      );
      await assert.rejects(late.client.openSession('press-10', 'press-10/#'), {
        code: 'RELAY_ERR_PEER_BUSY',
      });

      // Nobody answers: every offer ends on time, on both sides.
      assert.deepEqual(await outcomes, Array<string>(PENDING_OFFERS).fill('RELAY_ERR_SESSION_REFUSED'));
      const elapsed = Date.now() - offeredAt;
      assert.ok(elapsed >= OFFER_TIMEOUT_MS, `offers ended after ${elapsed} ms`);
      assert.ok(elapsed <= OFFER_TIMEOUT_MS + OFFER_CHECK_SLACK_MS, `offers ended only after ${elapsed} ms`);
      await silent.next(
        'sessionClose',
        () => silent.frames.filter((frame) => frame.type === 'sessionClose').length === PENDING_OFFERS,
      );

      // The slots are free again: the agent turned away gets its offer through.
      const opening = late.client.openSession('press-10', 'press-10/#');
      const offer = await silent.next('sessionOpen', (frame) => frame.peer === 'offer-late');
      silent.send({ type: 'sessionAccept', session: offer.session });
      assert.equal((await opening).session, offer.session);
    } finally {
      silent.terminate();
    }
  });
});
