/**
 * Error messages are built from the catalog plus bounded, sanitised fields: a sender's own input
 * (a 4,000-character map key with control characters in it) never comes back whole, so the error
 * frame stays within the protocol's message limit and the sender can still decode it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FRAME_KIND } from '../../../relay/protocol/frames.ts';
import { MAX_ERROR_MESSAGE_LENGTH } from '../../../relay/protocol/limits.ts';
import { RawAgent } from '../../support/raw-agent.ts';
import { rawFrame } from '../../support/raw-frame.ts';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';

/** Longer than any message may be, and full of what must never reach a log line or a terminal. */
const HOSTILE_KEY = `evil\u001b[31m\r\n${'k'.repeat(4000)}\u0000`;
const PRINTABLE = /^[\x20-\x7e]*$/;

describe('relay/server error messages never echo a sender whole', () => {
  let pki: TestPki;
  let t: TestRelay;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki);
  });
  after(() => t.stop());

  const CASES: readonly { name: string; body: (ot: string) => Record<string, unknown> }[] = [
    {
      name: 'an unknown 4,000-character key with control characters',
      body: (ot) => ({ topic: `${ot}/x`, seq: 1, count: 1, points: Uint8Array.of(1), [HOSTILE_KEY]: 1 }),
    },
    {
      name: 'a 4,000-character value where a short string belongs',
      body: () => ({ topic: HOSTILE_KEY, seq: 1, count: 1, points: Uint8Array.of(1) }),
    },
  ];

  for (const row of CASES) {
    it(`relay - ${row.name}: the error decodes, is printable ASCII, within ${MAX_ERROR_MESSAGE_LENGTH} characters`, async () => {
      const { certPem, keyPem } = await pki.issueAgent('ot', 'press-7');
      const agent = await RawAgent.open({ url: t.url, caPem: pki.ca.certPem, certPem, keyPem });
      try {
        agent.sendRaw(rawFrame(FRAME_KIND.publish, row.body('press-7')));
        const error = await agent.next('error');
        assert.equal(error.code, 'RELAY_ERR_INVALID_FRAME');
        assert.ok(error.message.length <= MAX_ERROR_MESSAGE_LENGTH, `${error.message.length} characters`);
        assert.match(error.message, PRINTABLE);
        assert.ok(!error.message.includes('k'.repeat(64)), 'the key came back whole');
        assert.equal(agent.undecodable, 0, 'the relay sent a frame its own decoder refuses');
      } finally {
        agent.terminate();
      }
    });
  }
});
