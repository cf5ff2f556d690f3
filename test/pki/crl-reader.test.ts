import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { createCertificateAuthority } from '../../pki/authority.ts';
import type { CertificateAuthority } from '../../pki/authority.ts';
import { buildCrl } from '../../pki/crl.ts';
import { crlPemToDer, readCrlSummary } from '../../pki/crl-reader.ts';
import { normalizeSerialHex } from '../../pki/serial.ts';
import { AGENT_KEY_BITS } from '../../pki/keys.ts';
import { DmzError } from '../../relay/protocol/errors.ts';

const THIS_UPDATE = new Date('2030-01-01T00:00:00Z');
const NEXT_UPDATE = new Date('2030-01-08T00:00:00Z');

describe('pki/crl-reader', () => {
  let ca: CertificateAuthority;
  before(async () => {
    ca = await createCertificateAuthority({ commonName: 'crl-reader test CA', keyBits: AGENT_KEY_BITS });
  });

  const crl = (serials: string[], nextUpdate = NEXT_UPDATE) =>
    buildCrl({
      ca,
      revoked: serials.map((serialHex) => ({ serialHex, revokedAt: THIS_UPDATE })),
      crlNumber: 7,
      thisUpdate: THIS_UPDATE,
      nextUpdate,
    });

  it('crl-reader - reads back dates and serials of a CRL built by crl.ts', () => {
    // 0x80... needs a leading zero octet in DER; 0x00ab... is written without its zeros.
    const summary = readCrlSummary(crl(['4a1b2c', '80ff', '00ab']));
    assert.deepEqual(summary, {
      thisUpdate: THIS_UPDATE,
      nextUpdate: NEXT_UPDATE,
      revokedSerials: ['4a1b2c', '80ff', 'ab'],
    });
  });

  it('crl-reader - an empty CRL has no serials', () => {
    assert.deepEqual(readCrlSummary(crl([])).revokedSerials, []);
  });

  it('crl-reader - GeneralizedTime dates (2050 and later) are read too', () => {
    const far = new Date('2051-06-01T12:00:00Z');
    assert.deepEqual(readCrlSummary(crl([], far)).nextUpdate, far);
  });

  it('crl-reader - the DER form is the PEM body', () => {
    const pem = crl(['01']);
    const body = pem.replace(/-----[A-Z0-9 ]+-----/g, '').replace(/\s+/g, '');
    assert.equal(crlPemToDer(pem).toString('base64'), body);
  });

  it('crl-reader - serials compare without case or leading zeros', () => {
    assert.equal(normalizeSerialHex('00AB'), 'ab');
    assert.equal(normalizeSerialHex('000'), '0');
  });

  const unreadable: [label: string, input: () => string][] = [
    ['a certificate', () => ca.certPem],
    ['a truncated CRL', () => '-----BEGIN X509 CRL-----\nMAMCAQE=\n-----END X509 CRL-----\n'],
    ['text that is not PEM', () => 'not a crl'],
  ];
  for (const [label, input] of unreadable) {
    it(`crl-reader - refuses ${label} with PKI_ERR_CERT_INVALID`, () => {
      assert.throws(
        () => readCrlSummary(input()),
        (error: unknown) => error instanceof DmzError && error.code === 'PKI_ERR_CERT_INVALID',
      );
    });
  }
});
