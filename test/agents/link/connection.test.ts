/**
 * Opening the link: the source address it binds, and how each way of not getting a welcome fails
 * (every one a DmzError with a stable code).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RelayLink } from '../../../agents/link/relay-link.ts';
import { DmzError, type ErrorCode } from '../../../relay/protocol/errors.ts';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { startScriptedRelay, welcomeFrame, type ScriptedPeer } from '../../support/scripted-relay.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';

let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});

describe('agents/link/connection - a real relay', () => {
  let t: TestRelay;
  before(async () => {
    t = await startTestRelay(pki);
  });
  after(() => t.stop());

  it('connects from the localAddress it is given: the relay sees 127.0.0.2', async () => {
    const credentials = await pki.issueAgent('ot', 'press-2');
    const link = await RelayLink.connect({
      url: t.url,
      caPem: pki.ca.certPem,
      ...credentials,
      localAddress: '127.0.0.2',
    });
    try {
      assert.equal(link.welcome.name, 'press-2');
      const connected = await t.audit.waitFor(
        (entry) => entry.event === 'agent.connected' && entry['agent'] === 'press-2',
        'the connection',
      );
      assert.equal(connected['address'], '127.0.0.2');
    } finally {
      await link.close();
    }
  });
});

describe('agents/link/connection - failures before the welcome', () => {
  const CASES: readonly {
    name: string;
    /** What the scripted relay does on the agent's hello. */
    onHello: (peer: ScriptedPeer) => void;
    code: ErrorCode;
    message: RegExp;
  }[] = [
    {
      name: 'the relay closes with a catalog code: that code',
      onHello: (peer) => peer.close(1008, 'RELAY_ERR_FORBIDDEN'),
      code: 'RELAY_ERR_FORBIDDEN',
      message: /^relay closed the connection \(1008 RELAY_ERR_FORBIDDEN\)$/,
    },
    {
      name: 'the relay closes with no code: AGENT_ERR_CONNECT_FAILED',
      onHello: (peer) => peer.close(1011, 'something broke'),
      code: 'AGENT_ERR_CONNECT_FAILED',
      message: /\(1011 something broke\)/,
    },
    {
      name: 'the first frame is not a welcome: RELAY_ERR_BAD_STATE',
      onHello: (peer) => peer.send({ type: 'ping', nonce: 1 }, welcomeFrame()),
      code: 'RELAY_ERR_BAD_STATE',
      message: /^expected welcome, got ping$/,
    },
    {
      name: 'no welcome within connectTimeoutMs: AGENT_ERR_CONNECT_FAILED',
      onHello: () => undefined,
      code: 'AGENT_ERR_CONNECT_FAILED',
      message: /did not welcome us in time/,
    },
  ];
  for (const row of CASES) {
    it(`connection - ${row.name}`, async () => {
      const relay = await startScriptedRelay(pki, row.onHello);
      try {
        const credentials = await pki.issueAgent('ot', 'press-7');
        await assert.rejects(
          RelayLink.connect({ url: relay.url, caPem: pki.ca.certPem, ...credentials, connectTimeoutMs: 500 }),
          (error: unknown) => {
            assert.ok(error instanceof DmzError, String(error));
            assert.equal(error.code, row.code);
            assert.match(error.message, row.message);
            return true;
          },
        );
      } finally {
        await relay.close();
      }
    });
  }

  it('connection - a TLS refusal (a relay certificate from another CA): AGENT_ERR_CONNECT_FAILED', async () => {
    const relay = await startScriptedRelay(pki, (peer) => peer.send(welcomeFrame()));
    try {
      const credentials = await pki.issueAgent('ot', 'press-7');
      const stranger = await createTestPki();
      await assert.rejects(
        RelayLink.connect({ url: relay.url, ...credentials, caPem: stranger.ca.certPem }),
        { code: 'AGENT_ERR_CONNECT_FAILED' },
      );
    } finally {
      await relay.close();
    }
  });

  it('connection - a ws:// URL is refused before anything is sent', async () => {
    const credentials = await pki.issueAgent('ot', 'press-7');
    await assert.rejects(
      RelayLink.connect({ url: 'ws://127.0.0.1:1/v1/agent', caPem: pki.ca.certPem, ...credentials }),
      { code: 'CONFIG_ERR_INVALID' },
    );
  });
});
