import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { spkiFingerprint } from '../../pki/fingerprint.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { createTestPki, runOpenssl } from '../support/test-pki.ts';
import type { TestPki } from '../support/test-pki.ts';

describe('pki/fingerprint', () => {
  let pki: TestPki;
  before(async () => {
    pki = await createTestPki();
  });

  it('fingerprint - equals sha256 of the DER SPKI that openssl extracts from the CA certificate', async () => {
    const { exitCode, stdout } = await runOpenssl(['x509', '-in', 'ca.pem', '-noout', '-pubkey'], {
      'ca.pem': pki.ca.certPem,
    });
    assert.equal(exitCode, 0);
    const body = stdout.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
    const expected = createHash('sha256').update(Buffer.from(body, 'base64')).digest('hex');
    assert.equal(spkiFingerprint(pki.ca.certPem), `sha256:${expected}`);
    assert.match(spkiFingerprint(pki.ca.certPem), /^sha256:[0-9a-f]{64}$/);
  });

  it('fingerprint - a certificate and its bare public key give the same pin', () => {
    const publicKeyPem = new X509Certificate(pki.relay.certPem).publicKey
      .export({ type: 'spki', format: 'pem' })
      .toString();
    assert.equal(spkiFingerprint(publicKeyPem), spkiFingerprint(pki.relay.certPem));
    // Line endings do not matter (forge writes CRLF, most tools LF).
    assert.equal(
      spkiFingerprint(pki.relay.certPem.replace(/\r\n/g, '\n')),
      spkiFingerprint(pki.relay.certPem),
    );
  });

  it('fingerprint - pins the key, not the certificate: two certificates for one key share it', async () => {
    const first = await pki.issueAgent('ot', 'plc-1');
    const second = await pki.issueAgent('it', 'hmi-1');
    assert.notEqual(first.certPem, second.certPem);
    assert.equal(spkiFingerprint(first.certPem), spkiFingerprint(second.certPem));
    assert.notEqual(spkiFingerprint(first.certPem), pki.caFingerprint);
  });

  const refused: ReadonlyArray<{ name: string; pem: () => string }> = [
    { name: 'empty string', pem: () => '' },
    { name: 'garbage', pem: () => 'not a pem at all' },
    { name: 'a private key', pem: () => pki.relay.keyPem },
    { name: 'a CRL', pem: () => pki.crlPem },
    // One 64-character line of base64 dropped: the DER lengths no longer add up.
    {
      name: 'a truncated certificate',
      pem: () => pki.ca.certPem.replace(/\r?\n[A-Za-z0-9+/]{64}\r?\n/, '\n'),
    },
  ];
  for (const { name, pem } of refused) {
    it(`fingerprint - refuses ${name}`, () => {
      assert.throws(
        () => spkiFingerprint(pem()),
        (error: unknown) => error instanceof DmzError && error.code === 'PKI_ERR_CERT_INVALID',
      );
    });
  }
});
