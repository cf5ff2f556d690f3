import assert from 'node:assert/strict';
import type { ConnectionOptions } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { DmzError } from '../../../relay/protocol/errors.ts';
import type { FrameRecorder } from '../../support/frame-recorder.ts';
import type { RawAgent } from '../../support/raw-agent.ts';
import {
  openMixedSession,
  startTestRelay,
  type AuditEntry,
  type TestRelay,
} from '../../support/relay-harness.ts';
import { createTestPki, type AgentCredentials, type TestPki } from '../../support/test-pki.ts';
import { probeAgentPort } from '../../support/tls-probe.ts';
import { waitFor } from '../../support/wait.ts';

/** The code a call was refused with ('none' if it succeeded). */
function codeOf(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => 'none',
    (error: unknown) => (error instanceof DmzError ? error.code : String(error)),
  );
}

const deliveries = (agent: FrameRecorder): number =>
  agent.frames.filter((frame) => frame.type === 'deliver').length;

/** Clients the TLS layer must turn away; `detail` is what the audit entry says was wrong. */
const TLS_REFUSALS: readonly {
  name: string;
  credentials: (pki: TestPki, revoked: AgentCredentials) => Promise<AgentCredentials | undefined>;
  tls?: ConnectionOptions;
  /** Whether the client even finishes its side of the handshake (TLS 1.3 clients finish first). */
  handshake?: boolean;
  reason: string;
  detail: RegExp;
}[] = [
  {
    name: 'no certificate',
    credentials: () => Promise.resolve(undefined),
    reason: 'tls',
    detail: /PEER_DID_NOT_RETURN_A_CERTIFICATE/,
  },
  {
    name: 'a self-signed certificate',
    credentials: (pki) => pki.selfSigned('ot', 'press-7'),
    reason: 'tls',
    // OpenSSL looks for the issuer's CRL before it gives up on the issuer itself.
    detail: /SELF_SIGNED|UNABLE_TO_GET_CRL/,
  },
  {
    name: 'a certificate from a foreign CA of the same name',
    credentials: (pki) => pki.foreignCa('ot', 'press-7'),
    reason: 'tls',
    detail: /UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_SIGNATURE_FAILURE/,
  },
  {
    name: 'an expired certificate',
    credentials: (pki) => pki.expired('ot', 'press-7'),
    reason: 'tls',
    detail: /CERT_HAS_EXPIRED/,
  },
  {
    name: 'a certificate not yet valid',
    credentials: (pki) => pki.notYetValid('ot', 'press-7'),
    reason: 'tls',
    detail: /CERT_NOT_YET_VALID/,
  },
  {
    name: 'the CA certificate as a client certificate',
    credentials: (pki) => Promise.resolve(pki.caAsClient()),
    reason: 'tls',
    detail: /INVALID_PURPOSE/,
  },
  {
    name: 'the relay server certificate as a client certificate',
    credentials: (pki) => Promise.resolve(pki.serverCertAsClient()),
    reason: 'tls',
    detail: /INVALID_PURPOSE/,
  },
  {
    name: 'a certificate the CRL lists as revoked',
    credentials: (_pki, revoked) => Promise.resolve(revoked),
    reason: 'tls',
    detail: /CERT_REVOKED/,
  },
  {
    name: 'a valid certificate but at most TLS 1.2',
    credentials: (pki) => pki.issueAgent('ot', 'press-7'),
    tls: { maxVersion: 'TLSv1.2' },
    handshake: false,
    reason: 'tls',
    detail: /UNSUPPORTED_PROTOCOL|VERSION/,
  },
  {
    name: 'a CA-issued client certificate without an agent identity',
    credentials: (pki) => pki.withoutIdentity(),
    reason: 'RELAY_ERR_IDENTITY',
    detail: /agent identity/,
  },
];

describe('relay/server mTLS refusal', () => {
  let pki: TestPki;
  let revoked: AgentCredentials;
  let t: TestRelay;

  before(async () => {
    pki = await createTestPki();
    // Revoked before the relay starts, so the CRL it loads already lists the serial.
    revoked = await pki.issueAgent('ot', 'stolen-plc');
    pki.revoke(revoked.serialHex);
    t = await startTestRelay(pki, {
      policy: [
        { agent: 'press-7' },
        { agent: 'stolen-plc' },
        { agent: 'historian', subscribe: ['press-7/temps/#'] },
      ],
    });
  });
  after(() => t.stop());

  /** The first audit entry after position `from` that matches, waiting for it. */
  function auditedAfter(from: number, predicate: (entry: AuditEntry) => boolean, what: string) {
    return waitFor(() => t.audit.entries.slice(from).find(predicate), what);
  }

  async function assertValidAgentConnects(): Promise<void> {
    const agent = await t.connect('ot', 'press-7');
    assert.equal(agent.client.welcome.name, 'press-7');
    await agent.client.close();
  }

  it('relay - the probe reaches the WebSocket upgrade with a valid certificate (control)', async () => {
    const valid = await pki.issueAgent('ot', 'press-7');
    const result = await probeAgentPort(t.relay.agentPort, {
      ca: pki.ca.certPem,
      cert: valid.certPem,
      key: valid.keyPem,
    });
    assert.match(result.received, /^HTTP\/1\.1 101 /);
  });

  TLS_REFUSALS.forEach((row, index) => {
    it(`relay - refuses ${row.name} before any HTTP, audits why and from where, keeps serving others`, async () => {
      const credentials = await row.credentials(pki, revoked);
      const from = t.audit.entries.length;
      // One source address per row: refusals of one kind from one source are aggregated per window.
      const source = `127.0.0.${20 + index}`;
      const result = await probeAgentPort(t.relay.agentPort, {
        ca: pki.ca.certPem,
        localAddress: source,
        ...(credentials === undefined ? {} : { cert: credentials.certPem, key: credentials.keyPem }),
        ...row.tls,
      });
      assert.equal(
        result.received,
        '',
        'the relay answered: no HTTP response or frame may reach this client',
      );
      if (row.handshake !== undefined) assert.equal(result.handshake, row.handshake);
      const refused = await auditedAfter(from, (entry) => entry.event === 'agent.refused', 'the refusal');
      assert.equal(refused['reason'], row.reason);
      assert.match(String(refused['detail']), row.detail);
      assert.equal(refused['address'], source);
      assert.equal(
        t.audit.entries.slice(from).find((entry) => entry.event === 'agent.connected'),
        undefined,
        'a refused client was admitted',
      );
      await assertValidAgentConnects();
    });
  });

  it('relay - an agent no policy rule names is closed with 1008 FORBIDDEN after TLS', async () => {
    const from = t.audit.entries.length;
    await assert.rejects(t.connect('ot', 'stranger'), /\(1008 RELAY_ERR_FORBIDDEN\)/);
    const refused = await auditedAfter(
      from,
      (entry) => entry.event === 'agent.refused' && entry['agent'] === 'stranger',
      'the policy refusal',
    );
    assert.equal(refused['reason'], 'RELAY_ERR_FORBIDDEN');
    await assertValidAgentConnects();
  });

  /**
   * What each role may not do; the relay answers FORBIDDEN and keeps the connection. The offender
   * is a raw agent, which sees the error frames a refused publish gets; its peer is a real one.
   */
  const ROLE_REFUSALS: readonly {
    name: string;
    offender: 'ot' | 'it';
    /** Resolves with the error code the relay answered with. */
    attempt: (offender: RawAgent, session: number) => Promise<string>;
  }[] = [
    {
      name: 'an OT agent opening a session',
      offender: 'ot',
      attempt: (ot) => codeOf(ot.openSession('press-7', 'press-7/#')),
    },
    {
      name: 'an IT agent publishing',
      offender: 'it',
      attempt: async (it) => {
        it.send({ type: 'publish', topic: 'press-7/temps/t1', seq: 1, count: 1, points: Uint8Array.of(1) });
        return (await it.next('error')).code;
      },
    },
    {
      name: 'an IT agent subscribing beyond its grant',
      offender: 'it',
      attempt: (it, session) => codeOf(it.subscribe(session, 'press-7/#')),
    },
  ];
  for (const row of ROLE_REFUSALS) {
    it(`relay - refuses ${row.name} with FORBIDDEN; the agent stays connected`, async () => {
      const { raw, agent, it, session } = await openMixedSession(t, row.offender, 'press-7', 'historian');
      try {
        assert.equal(await row.attempt(raw, session), 'RELAY_ERR_FORBIDDEN');
        await raw.roundTrip();
        assert.equal(raw.closed, undefined);
        assert.equal(deliveries(it), 0, 'something refused was delivered');
      } finally {
        raw.terminate();
        await agent.client.close();
      }
    });
  }
});
