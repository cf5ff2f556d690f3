import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { connectWithPinnedCa, endpointOf, verifyPinnedChain } from '../../agents/ca-pinning.ts';
import { issueServerCertificate, type CertificateAuthority } from '../../pki/authority.ts';
import { DAY_MS } from '../../pki/lifetimes.ts';
import { issueAgentCertificate } from '../../pki/certificate-template.ts';
import { spkiFingerprint } from '../../pki/fingerprint.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair, type RsaKeyPair } from '../../pki/keys.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { MIN_TLS_VERSION } from '../../relay/protocol/limits.ts';
import { createEnrollmentFixture, type EnrollmentFixture } from '../support/enrollment-fixture.ts';
import { waitFor } from '../support/wait.ts';

const TIMEOUT_MS = 5_000;

let fixture: EnrollmentFixture;
let other: EnrollmentFixture;
let ca: CertificateAuthority;
let serverKeys: RsaKeyPair;

before(async () => {
  [fixture, other, serverKeys] = await Promise.all([
    createEnrollmentFixture(),
    createEnrollmentFixture(),
    generateRsaKeyPair(AGENT_KEY_BITS),
  ]);
  ca = await fixture.state.loadCa();
});
after(async () => {
  await Promise.all([fixture.close(), other.close()]);
});

interface RecordingTlsServer {
  readonly port: number;
  /** Application bytes received after handshakes, over all connections. */
  readonly received: () => number;
  /** TCP connections accepted and since closed. */
  readonly closed: () => number;
  close(): Promise<void>;
}

/** A plain TLS server presenting `chainPem`, recording whether a client ever sends it a byte. */
async function startTlsServer(
  chainPem: string,
  keyPem: string,
  host = '127.0.0.1',
): Promise<RecordingTlsServer> {
  let received = 0;
  let closed = 0;
  const server: Server = createServer(
    { cert: chainPem, key: keyPem, minVersion: MIN_TLS_VERSION },
    (socket) => {
      socket.on('data', (chunk: Buffer) => (received += chunk.byteLength));
      socket.on('error', () => undefined);
    },
  );
  server.on('connection', (socket: Socket) => socket.on('close', () => (closed += 1)));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received: () => received,
    closed: () => closed,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const chain = (...pems: string[]) => pems.map((pem) => pem.trimEnd()).join('\n') + '\n';

async function serverCertificate(now = new Date()): Promise<string> {
  const issued = await issueServerCertificate({
    ca,
    publicKeyPem: serverKeys.publicKeyPem,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    lifetimeDays: 1,
    now,
  });
  return issued.certPem;
}

const REFUSALS: readonly {
  name: string;
  server: () => Promise<{ chainPem: string; keyPem: string; host?: string }>;
  reason: RegExp;
}[] = [
  {
    name: 'our relay certificate without the CA in the chain',
    server: () => Promise.resolve({ chainPem: fixture.tls.certPem, keyPem: fixture.tls.keyPem }),
    reason: /no certificate in the server chain has the pinned CA key/,
  },
  {
    name: "another relay's chain (its own CA)",
    server: () =>
      Promise.resolve({ chainPem: chain(other.tls.certPem, other.tls.caPem), keyPem: other.tls.keyPem }),
    reason: /no certificate in the server chain has the pinned CA key/,
  },
  {
    name: "another CA's server certificate followed by our CA certificate",
    server: () =>
      Promise.resolve({ chainPem: chain(other.tls.certPem, fixture.tls.caPem), keyPem: other.tls.keyPem }),
    // Node links the peer chain by issuance, so our CA, issuing nothing here, is not even in it.
    reason: /no certificate in the server chain has the pinned CA key/,
  },
  {
    name: 'an expired server certificate from our CA',
    server: async () => ({
      chainPem: chain(await serverCertificate(new Date(Date.now() - 3 * DAY_MS)), fixture.tls.caPem),
      keyPem: serverKeys.privateKeyPem,
    }),
    reason: /expired or not yet valid/,
  },
  {
    name: 'an agent (clientAuth) certificate from our CA',
    server: async () => {
      const agent = await issueAgentCertificate({
        ca,
        publicKeyPem: serverKeys.publicKeyPem,
        identity: { trustDomain: 'test.dmz', role: 'ot', name: 'press-7' },
        lifetimeMs: DAY_MS,
      });
      return { chainPem: chain(agent.certPem, fixture.tls.caPem), keyPem: serverKeys.privateKeyPem };
    },
    reason: /not a TLS server certificate/,
  },
  {
    name: 'our full chain, reached at an address the certificate does not name',
    server: async () => ({
      chainPem: chain(await serverCertificate(), fixture.tls.caPem),
      keyPem: serverKeys.privateKeyPem,
      host: '127.0.0.2',
    }),
    reason: /not for 127\.0\.0\.2/,
  },
];

describe('CA pinning', () => {
  for (const refusal of REFUSALS) {
    it(`refuses ${refusal.name}, having sent nothing`, async () => {
      const { chainPem, keyPem, host } = await refusal.server();
      const server = await startTlsServer(chainPem, keyPem, host);
      try {
        const endpoint = endpointOf(new URL(`https://${host ?? '127.0.0.1'}:${server.port}`));
        const error = await connectWithPinnedCa({
          endpoint,
          caFingerprint: fixture.state.caFingerprint,
          timeoutMs: TIMEOUT_MS,
        }).then(
          (connection) => {
            connection.socket.destroy();
            return 'connected';
          },
          (rejection: unknown) => rejection,
        );
        assert.ok(error instanceof DmzError);
        assert.equal(error.code, 'PKI_ERR_CA_MISMATCH');
        assert.match(error.message, refusal.reason);
        await waitFor(() => server.closed() === 1, 'the refused connection to close');
        assert.equal(server.received(), 0);
      } finally {
        await server.close();
      }
    });
  }

  it('accepts the relay chain and returns the pinned CA', async () => {
    const server = await startTlsServer(chain(fixture.tls.certPem, fixture.tls.caPem), fixture.tls.keyPem);
    try {
      const connection = await connectWithPinnedCa({
        endpoint: endpointOf(new URL(`wss://127.0.0.1:${server.port}/v1/agent`)),
        caFingerprint: fixture.state.caFingerprint,
        timeoutMs: TIMEOUT_MS,
      });
      assert.equal(spkiFingerprint(connection.ca.toString()), fixture.state.caFingerprint);
      connection.socket.end('hello');
      await waitFor(() => server.received() === 5, 'the bytes sent after verification');
    } finally {
      await server.close();
    }
  });

  it('refuses a leaf that the pinned CA did not sign, even when the CA certificate comes with it', () => {
    const forged = [new X509Certificate(other.tls.certPem), new X509Certificate(fixture.tls.caPem)];
    assert.throws(() => verifyPinnedChain(forged, fixture.state.caFingerprint, '127.0.0.1', new Date()), {
      code: 'PKI_ERR_CA_MISMATCH',
      message: /not issued by the pinned CA/,
    });
    const genuine = [new X509Certificate(fixture.tls.certPem), new X509Certificate(fixture.tls.caPem)];
    assert.equal(
      verifyPinnedChain(genuine, fixture.state.caFingerprint, '127.0.0.1', new Date()).toString(),
      new X509Certificate(fixture.tls.caPem).toString(),
    );
  });

  it('reads host and port from https and wss URLs, IPv6 included', () => {
    assert.deepEqual(endpointOf(new URL('https://relay.plant:8444/enroll')), {
      host: 'relay.plant',
      port: 8444,
    });
    assert.deepEqual(endpointOf(new URL('wss://[::1]/x')), { host: '::1', port: 443 });
  });
});
