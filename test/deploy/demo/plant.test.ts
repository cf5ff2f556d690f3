/** The demo plant's client-side manners: the press and historian survive a closed or odd link. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RelayLink } from '../../../agents/link/relay-link.ts';
import { decodeReading, Press } from '../../../deploy/demo/plant.ts';
import { startScriptedRelay, welcomeFrame, type ScriptedRelay } from '../../support/scripted-relay.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { expectNever, waitFor } from '../../support/wait.ts';

describe('deploy/demo/plant - the press and historian survive a closed or odd connection', () => {
  let pki: TestPki;
  let relay: ScriptedRelay;
  before(async () => {
    pki = await createTestPki();
    relay = await startScriptedRelay(pki, (peer) => peer.send(welcomeFrame('press-7')));
  });
  after(() => relay.close());

  it('stops publishing once its connection is closed', async () => {
    const PERIOD_MS = 10;
    const credentials = await pki.issueAgent('ot', 'press-7');
    const client = await RelayLink.connect({ url: relay.url, caPem: pki.ca.certPem, ...credentials });
    let publishesAfterClose = 0;
    const publish = client.publish.bind(client);
    client.publish = (...args) => {
      if (client.closed) publishesAfterClose++;
      publish(...args);
    };
    const press = new Press();
    press.start(client, 'press-7', PERIOD_MS);
    try {
      const peer = await relay.peer();
      await waitFor(() => peer.received.some((frame) => frame.type === 'publish'), 'a publish');
      await client.close();
      await expectNever(() => publishesAfterClose > 0, 'a publish on the closed connection', 10 * PERIOD_MS);
    } finally {
      press.stop();
    }
  });

  it('skips a point that is not a reading instead of throwing', () => {
    const encode = (text: string) => new TextEncoder().encode(text);
    assert.deepEqual(decodeReading(encode('{"value":61.5,"ts":1700000000000}')), {
      value: 61.5,
      ts: 1_700_000_000_000,
    });
    for (const text of ['', '{"value":', 'null', '42', '{"value":"fast","ts":1}', '{"ts":1}']) {
      assert.equal(decodeReading(encode(text)), undefined, JSON.stringify(text));
    }
  });
});
