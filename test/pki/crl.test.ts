import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer } from 'node:tls';
import type { Server, TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import forge from 'node-forge';
import { createCertificateAuthority } from '../../pki/authority.ts';
import { DAY_MS } from '../../pki/lifetimes.ts';
import { buildCrl } from '../../pki/crl.ts';
import { TEST_CA_COMMON_NAME, createTestPki, runOpenssl } from '../support/test-pki.ts';
import type { AgentCredentials, TestPki } from '../support/test-pki.ts';

const HANDSHAKE_TIMEOUT_MS = 5_000;

/** DER of the n-th element of a certificate's or CRL's to-be-signed part. */
function tbsFieldDer(pem: string, index: number): string {
  const [block] = forge.pem.decode(pem);
  const root = forge.asn1.fromDer(block!.body);
  const tbs = (root.value as forge.asn1.Asn1[])[0]!;
  return forge.asn1.toDer((tbs.value as forge.asn1.Asn1[])[index]!).toHex();
}

describe('pki/crl', () => {
  let pki: TestPki;
  let good: AgentCredentials;
  let revoked: AgentCredentials;
  before(async () => {
    pki = await createTestPki();
    [good, revoked] = await Promise.all([
      pki.issueAgent('ot', 'plc-good'),
      pki.issueAgent('ot', 'plc-revoked'),
    ]);
  });

  it('crl - an empty CRL is a signed v2 CRL with cRLNumber and authorityKeyIdentifier, no entries', async () => {
    const result = await runOpenssl(['crl', '-in', 'crl.pem', '-CAfile', 'ca.pem', '-noout', '-text'], {
      'crl.pem': pki.crlPem,
      'ca.pem': pki.ca.certPem,
    });
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /verify OK/);
    assert.match(result.stdout, /Version 2 \(0x1\)/);
    assert.match(result.stdout, /Issuer: CN = dmz-relay test CA\n/);
    assert.match(result.stdout, /X509v3 CRL Number: \n\s+1\n/);
    assert.match(result.stdout, /X509v3 Authority Key Identifier: \n\s+[0-9A-F:]{59}\n/);
    assert.match(result.stdout, /No Revoked Certificates\./);
  });

  it('crl - the issuer is the CA certificate subject, byte for byte', () => {
    // TBSCertList: version, signature, issuer; TBSCertificate: [0] version, serial, signature, issuer, validity, subject.
    assert.equal(tbsFieldDer(pki.crlPem, 2), tbsFieldDer(pki.ca.certPem, 5));
  });

  it('crl - openssl verify -crl_check refuses the revoked agent and passes the good one', async () => {
    const crlPem = pki.revoke(revoked.serialHex);
    const files = {
      'ca.pem': pki.ca.certPem,
      'crl.pem': crlPem,
      'good.pem': good.certPem,
      'revoked.pem': revoked.certPem,
    };
    const goodResult = await runOpenssl(
      ['verify', '-crl_check', '-CAfile', 'ca.pem', '-CRLfile', 'crl.pem', 'good.pem'],
      files,
    );
    assert.equal(goodResult.exitCode, 0, goodResult.stdout + goodResult.stderr);
    const revokedResult = await runOpenssl(
      ['verify', '-crl_check', '-CAfile', 'ca.pem', '-CRLfile', 'crl.pem', 'revoked.pem'],
      files,
    );
    assert.notEqual(revokedResult.exitCode, 0);
    assert.match(revokedResult.stdout + revokedResult.stderr, /certificate revoked/);
    const text = await runOpenssl(['crl', '-in', 'crl.pem', '-noout', '-text'], files);
    assert.match(text.stdout, /X509v3 CRL Number: \n\s+2\n/);
    assert.match(text.stdout, new RegExp(`Serial Number: ${revoked.serialHex.toUpperCase()}\\n`));
  });

  it('crl - serials match whatever their case and leading zeros; duplicates are listed once', async () => {
    const crlPem = buildCrl({
      ca: pki.ca,
      revoked: [
        { serialHex: `000${revoked.serialHex.toUpperCase()}`, revokedAt: new Date() },
        { serialHex: revoked.serialHex, revokedAt: new Date() },
      ],
      crlNumber: 9,
      thisUpdate: new Date(Date.now() - 60_000),
      nextUpdate: new Date(Date.now() + DAY_MS),
    });
    const files = { 'ca.pem': pki.ca.certPem, 'crl.pem': crlPem, 'revoked.pem': revoked.certPem };
    const result = await runOpenssl(
      ['verify', '-crl_check', '-CAfile', 'ca.pem', '-CRLfile', 'crl.pem', 'revoked.pem'],
      files,
    );
    assert.match(result.stdout + result.stderr, /certificate revoked/);
    const text = await runOpenssl(['crl', '-in', 'crl.pem', '-noout', '-text'], files);
    assert.equal(text.stdout.match(/Serial Number:/g)?.length, 1);
  });

  it('crl - dates from 2050 on are GeneralizedTime and still verify', async () => {
    const crlPem = buildCrl({
      ca: pki.ca,
      revoked: [{ serialHex: '7f', revokedAt: new Date('2051-02-03T04:05:06Z') }],
      crlNumber: 3,
      thisUpdate: new Date('2049-12-31T23:59:59Z'),
      nextUpdate: new Date('2051-02-03T04:05:06Z'),
    });
    const result = await runOpenssl(['crl', '-in', 'crl.pem', '-CAfile', 'ca.pem', '-noout', '-text'], {
      'crl.pem': crlPem,
      'ca.pem': pki.ca.certPem,
    });
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /Last Update: Dec 31 23:59:59 2049 GMT/);
    assert.match(result.stdout, /Next Update: Feb {2}3 04:05:06 2051 GMT/);
  });

  it('crl - a CRL from another CA of the same name does not verify against ours', async () => {
    const stranger = await createCertificateAuthority({ commonName: TEST_CA_COMMON_NAME, keyBits: 2048 });
    const crlPem = buildCrl({
      ca: stranger,
      revoked: [],
      crlNumber: 1,
      thisUpdate: new Date(Date.now() - 60_000),
      nextUpdate: new Date(Date.now() + DAY_MS),
    });
    const result = await runOpenssl(['crl', '-in', 'crl.pem', '-CAfile', 'ca.pem', '-noout'], {
      'crl.pem': crlPem,
      'ca.pem': pki.ca.certPem,
    });
    // openssl crl reports the failed signature check on stderr but still exits 0 (OpenSSL 3.0).
    assert.match(result.stderr, /verify failure/);
    assert.doesNotMatch(result.stderr, /verify OK/);
  });

  const refused: ReadonlyArray<{ name: string; change: Partial<Parameters<typeof buildCrl>[0]> }> = [
    { name: 'a negative CRL number', change: { crlNumber: -1 } },
    { name: 'a fractional CRL number', change: { crlNumber: 1.5 } },
    { name: 'nextUpdate equal to thisUpdate', change: { nextUpdate: new Date(0), thisUpdate: new Date(0) } },
    { name: 'an invalid date', change: { thisUpdate: new Date(Number.NaN) } },
    { name: 'a serial that is not hex', change: { revoked: [{ serialHex: 'xyz', revokedAt: new Date() }] } },
    { name: 'a zero serial', change: { revoked: [{ serialHex: '000', revokedAt: new Date() }] } },
    {
      name: 'a serial over 20 octets',
      change: { revoked: [{ serialHex: '1'.repeat(41), revokedAt: new Date() }] },
    },
  ];
  for (const { name, change } of refused) {
    it(`crl - refuses ${name}`, () => {
      assert.throws(
        () =>
          buildCrl({
            ca: pki.ca,
            revoked: [],
            crlNumber: 1,
            thisUpdate: new Date(Date.now() - 60_000),
            nextUpdate: new Date(Date.now() + DAY_MS),
            ...change,
          }),
        RangeError,
      );
    });
  }
});

/**
 * The CRL as the relay uses it: the `crl` option of a TLS server that requires client
 * certificates. Outcomes are read on the server, where OpenSSL's verdict is.
 */
describe('pki/crl - tls server with requestCert, rejectUnauthorized and our CRL', () => {
  let pki: TestPki;
  let server: Server;
  let port: number;
  let good: AgentCredentials;
  let revoked: AgentCredentials;

  before(async () => {
    pki = await createTestPki();
    [good, revoked] = await Promise.all([
      pki.issueAgent('ot', 'plc-good'),
      pki.issueAgent('it', 'hmi-revoked'),
    ]);
    server = createServer({
      key: pki.relay.keyPem,
      cert: pki.relay.certPem,
      ca: pki.ca.certPem,
      crl: pki.revoke(revoked.serialHex),
      requestCert: true,
      rejectUnauthorized: true,
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  after(() => {
    server.close();
  });

  /** Connects once; resolves with the server's verdict: null if accepted, else the OpenSSL code. */
  async function handshake(credentials: AgentCredentials): Promise<string | null> {
    const verdict = new Promise<string | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error('no TLS verdict in time'));
      }, HANDSHAKE_TIMEOUT_MS);
      const onAccepted = (socket: TLSSocket): void => {
        settle(socket.authorized ? null : String(socket.authorizationError));
        socket.destroy();
      };
      const onRefused = (_error: Error, socket: TLSSocket): void => {
        settle(String(socket.authorizationError));
      };
      const settle = (outcome: string | null): void => {
        clearTimeout(timer);
        server.off('secureConnection', onAccepted);
        server.off('tlsClientError', onRefused);
        resolve(outcome);
      };
      server.on('secureConnection', onAccepted);
      server.on('tlsClientError', onRefused);
    });
    const client = connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: pki.ca.certPem,
      cert: credentials.certPem,
      key: credentials.keyPem,
    });
    client.on('error', () => {
      // The refusal reaches the client as a reset or an alert; the server's verdict is the one asserted.
    });
    try {
      return await verdict;
    } finally {
      client.destroy();
    }
  }

  it('tls - accepts a good agent', async () => {
    assert.equal(await handshake(good), null);
  });

  it('tls - refuses a revoked agent with CERT_REVOKED', async () => {
    assert.equal(await handshake(revoked), 'CERT_REVOKED');
  });

  it('tls - refuses an agent revoked after the server started once the context is reloaded', async () => {
    const late = await pki.issueAgent('ot', 'plc-late');
    assert.equal(await handshake(late), null);
    server.setSecureContext({
      key: pki.relay.keyPem,
      cert: pki.relay.certPem,
      ca: pki.ca.certPem,
      crl: pki.revoke(late.serialHex),
    });
    assert.equal(await handshake(late), 'CERT_REVOKED');
    assert.equal(await handshake(good), null);
  });

  // What TLS itself refuses, with the fixture's hostile credentials. withoutIdentity passes TLS:
  // refusing it is the relay's identity check (relay/protocol/identity.ts), not OpenSSL's.
  const hostile: ReadonlyArray<{
    name: string;
    make: () => Promise<AgentCredentials>;
    verdicts: ReadonlyArray<string | null>;
  }> = [
    {
      name: 'self-signed',
      make: () => pki.selfSigned('ot', 'plc-1'),
      verdicts: ['UNABLE_TO_GET_CRL', 'DEPTH_ZERO_SELF_SIGNED_CERT'],
    },
    {
      name: 'foreign CA',
      make: () => pki.foreignCa('ot', 'plc-1'),
      verdicts: ['UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    },
    { name: 'expired', make: () => pki.expired('ot', 'plc-1'), verdicts: ['CERT_HAS_EXPIRED'] },
    { name: 'not yet valid', make: () => pki.notYetValid('ot', 'plc-1'), verdicts: ['CERT_NOT_YET_VALID'] },
    { name: 'CA as client', make: () => Promise.resolve(pki.caAsClient()), verdicts: ['INVALID_PURPOSE'] },
    {
      name: 'server certificate as client',
      make: () => Promise.resolve(pki.serverCertAsClient()),
      verdicts: ['INVALID_PURPOSE'],
    },
    { name: 'without identity (TLS accepts it)', make: () => pki.withoutIdentity(), verdicts: [null] },
  ];
  for (const { name, make, verdicts } of hostile) {
    it(`tls - fixture credentials: ${name}`, async () => {
      const verdict = await handshake(await make());
      assert.ok(verdicts.includes(verdict), `unexpected verdict ${String(verdict)}`);
    });
  }
});
