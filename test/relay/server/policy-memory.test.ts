/**
 * An IT agent cannot make the relay keep memory by naming peers: refused sessionOpen frames for
 * any number of distinct, absent OT agents leave the relay's heap (after a full GC) within a bound.
 *
 * Found by an outside audit: policy cached the grants of every identity it was asked about until
 * the next reload, and a sessionOpen asked about the named peer before looking it up, so one agent
 * cycling through valid names grew the heap by ~15 MB a minute that no disconnect freed. Policy
 * (relay/server/policy.ts) now compiles grants once per role and per agent a rule names, and keeps
 * no cache of arbitrary names.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawAgent } from '../../support/raw-agent.ts';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { waitFor } from '../../support/wait.ts';
import { heapAfterGc } from '../../support/heap.ts';

const FRAMES = 150_000;
/** Sent in bursts, so the relay's message rate limit (50,000 a second) is never reached. */
const BURST = 10_000;
const BURST_PAUSE_MS = 300;
/** The per-name cache grew the heap by ~50 MB over these frames; the rest is the GC's noise. */
const GROWTH_BOUND_BYTES = 12 * 1024 * 1024;

describe('relay/server memory an IT agent can make the relay keep', () => {
  let pki: TestPki;
  let t: TestRelay;
  let raw: RawAgent;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki);
    raw = await RawAgent.open({
      url: t.url,
      caPem: pki.ca.certPem,
      ...(await pki.issueAgent('it', 'hmi-1')),
    });
  });
  after(async () => {
    raw.terminate();
    await t.stop();
  });

  it(`relay - ${FRAMES} sessionOpen frames for distinct absent peers leave the heap within ${GROWTH_BOUND_BYTES / 1024 / 1024} MB`, async () => {
    const before = heapAfterGc();
    for (let sent = 0; sent < FRAMES; sent++) {
      // A valid agent name (a lower-case DNS label), different every time.
      const peer = `ghost-${sent.toString(36)}-${'x'.repeat(40)}`;
      raw.send({ type: 'sessionOpen', ref: sent, peer, filter: '#' });
      if (sent % BURST === BURST - 1) await new Promise((resolve) => setTimeout(resolve, BURST_PAUSE_MS));
    }
    let answered = 0;
    await waitFor(
      () => {
        // Count and forget the answers, so that the test's own records do not weigh in the heap.
        answered += raw.frames.filter((frame) => frame.type === 'error').length;
        raw.frames.length = 0;
        return answered >= FRAMES;
      },
      'every sessionOpen answered',
      30_000,
      50,
    );
    assert.equal(raw.closed, undefined, 'the relay cut the agent: the flood did not get through');
    const growth = heapAfterGc() - before;
    assert.ok(
      growth < GROWTH_BOUND_BYTES,
      `the heap grew by ${(growth / 1024 / 1024).toFixed(1)} MB (${Math.round(growth / FRAMES)} bytes per refused sessionOpen)`,
    );
  });
});
