import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { before, describe, it } from 'node:test';
import {
  CLOCK_SKEW_BACKDATE_MS,
  createCertificateAuthority,
  issueServerCertificate,
} from '../../pki/authority.ts';
import { DAY_MS } from '../../pki/lifetimes.ts';
import { CA_KEY_BITS, generateRsaKeyPair } from '../../pki/keys.ts';
import type { RsaKeyPair } from '../../pki/keys.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { createTestPki, opensslCertificateText, runOpenssl } from '../support/test-pki.ts';
import type { TestPki } from '../support/test-pki.ts';

const isCode = (code: string) => (error: unknown) => error instanceof DmzError && error.code === code;

describe('pki/authority', () => {
  let pki: TestPki;
  let serverKeys: RsaKeyPair;
  before(async () => {
    [pki, serverKeys] = await Promise.all([createTestPki(), generateRsaKeyPair(2048)]);
  });

  it('authority - the CA certificate is a critical CA:TRUE pathlen:0 that only signs certs and CRLs', async () => {
    const { text, extensions } = await opensslCertificateText(pki.ca.certPem);
    assert.deepEqual([...extensions.keys()].sort(), [
      'X509v3 Basic Constraints',
      'X509v3 Key Usage',
      'X509v3 Subject Key Identifier',
    ]);
    assert.deepEqual(extensions.get('X509v3 Basic Constraints'), {
      critical: true,
      value: 'CA:TRUE, pathlen:0',
    });
    assert.deepEqual(extensions.get('X509v3 Key Usage'), {
      critical: true,
      value: 'Certificate Sign, CRL Sign',
    });
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(text, /Issuer: CN = dmz-relay test CA\n/);
    assert.match(text, /Subject: CN = dmz-relay test CA\n/);
    const selfCheck = await runOpenssl(['verify', '-CAfile', 'ca.pem', 'ca.pem'], {
      'ca.pem': pki.ca.certPem,
    });
    assert.equal(selfCheck.exitCode, 0, selfCheck.stderr);
  });

  it('authority - validity starts a minute back and lasts lifetimeDays; serial is positive 128-bit', async () => {
    const now = new Date('2030-03-01T12:00:00.750Z');
    const ca = await createCertificateAuthority({
      commonName: 'Plant 7 CA',
      keyBits: 2048,
      lifetimeDays: 30,
      now,
    });
    const cert = new X509Certificate(ca.certPem);
    assert.equal(
      new Date(cert.validFrom).getTime(),
      Date.parse('2030-03-01T12:00:00Z') - CLOCK_SKEW_BACKDATE_MS,
    );
    assert.equal(new Date(cert.validTo).getTime(), Date.parse('2030-03-01T12:00:00Z') + 30 * DAY_MS);
    assert.match(cert.serialNumber, /^[4-7][0-9A-F]{31}$/);
    assert.equal(cert.ca, true);
    assert.equal(cert.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  });

  it('authority - production default key size is 3072 bits', async () => {
    const ca = await createCertificateAuthority({ commonName: 'default size' });
    assert.equal(CA_KEY_BITS, 3072);
    assert.equal(new X509Certificate(ca.certPem).publicKey.asymmetricKeyDetails?.modulusLength, 3072);
  });

  it('authority - the relay server certificate is serverAuth only, CA:FALSE, named by DNS and IP', async () => {
    const issued = await issueServerCertificate({
      ca: pki.ca,
      publicKeyPem: serverKeys.publicKeyPem,
      dnsNames: ['relay.plant.example', 'localhost'],
      ipAddresses: ['10.0.0.5', '::1', 'fd00::17'],
      lifetimeDays: 90,
    });
    const { text, extensions } = await opensslCertificateText(issued.certPem);
    assert.deepEqual([...extensions.keys()].sort(), [
      'X509v3 Authority Key Identifier',
      'X509v3 Basic Constraints',
      'X509v3 Extended Key Usage',
      'X509v3 Key Usage',
      'X509v3 Subject Alternative Name',
      'X509v3 Subject Key Identifier',
    ]);
    assert.deepEqual(extensions.get('X509v3 Basic Constraints'), { critical: true, value: 'CA:FALSE' });
    assert.deepEqual(extensions.get('X509v3 Key Usage'), {
      critical: true,
      value: 'Digital Signature, Key Encipherment',
    });
    assert.deepEqual(extensions.get('X509v3 Extended Key Usage'), {
      critical: false,
      value: 'TLS Web Server Authentication',
    });
    assert.equal(
      extensions.get('X509v3 Subject Alternative Name')?.value,
      'DNS:relay.plant.example, DNS:localhost, IP Address:10.0.0.5, IP Address:0:0:0:0:0:0:0:1, IP Address:FD00:0:0:0:0:0:0:17',
    );
    const caKeyId = (await opensslCertificateText(pki.ca.certPem)).extensions.get(
      'X509v3 Subject Key Identifier',
    );
    assert.equal(extensions.get('X509v3 Authority Key Identifier')?.value, caKeyId?.value);
    assert.match(text, /Subject: CN = relay.plant.example\n/);

    const files = { 'ca.pem': pki.ca.certPem, 'server.pem': issued.certPem };
    const asServer = await runOpenssl(
      ['verify', '-purpose', 'sslserver', '-CAfile', 'ca.pem', 'server.pem'],
      files,
    );
    assert.equal(asServer.exitCode, 0, asServer.stderr);
    const asClient = await runOpenssl(
      ['verify', '-purpose', 'sslclient', '-CAfile', 'ca.pem', 'server.pem'],
      files,
    );
    assert.notEqual(asClient.exitCode, 0);
    // X509_V_ERR_INVALID_PURPOSE.
    assert.match(asClient.stdout + asClient.stderr, /error 26 at 0 depth/);
  });

  const weakKeyPem = generateKeyPairSync('rsa', { modulusLength: 1024 })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();
  const ecKeyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();
  const refusedServerCertificates: ReadonlyArray<{
    name: string;
    options: { dnsNames?: string[]; ipAddresses?: string[]; publicKeyPem?: string; lifetimeDays?: number };
    code: string;
  }> = [
    { name: 'no name at all', options: { dnsNames: [], ipAddresses: [] }, code: 'PKI_ERR_CERT_INVALID' },
    { name: 'a wildcard DNS name', options: { dnsNames: ['*.plant.example'] }, code: 'PKI_ERR_CERT_INVALID' },
    { name: 'an empty DNS label', options: { dnsNames: ['relay..example'] }, code: 'PKI_ERR_CERT_INVALID' },
    {
      name: 'a DNS name with a space',
      options: { dnsNames: ['relay example'] },
      code: 'PKI_ERR_CERT_INVALID',
    },
    { name: 'a short IPv4 address', options: { ipAddresses: ['10.0.5'] }, code: 'PKI_ERR_CERT_INVALID' },
    { name: 'IPv4-mapped IPv6', options: { ipAddresses: ['::ffff:10.0.0.5'] }, code: 'PKI_ERR_CERT_INVALID' },
    { name: 'an IPv6 zone id', options: { ipAddresses: ['fe80::1%eth0'] }, code: 'PKI_ERR_CERT_INVALID' },
    { name: 'a zero lifetime', options: { lifetimeDays: 0 }, code: 'PKI_ERR_CERT_INVALID' },
    { name: 'an RSA-1024 key', options: { publicKeyPem: weakKeyPem }, code: 'PKI_ERR_CSR_KEY' },
    { name: 'an EC key', options: { publicKeyPem: ecKeyPem }, code: 'PKI_ERR_CSR_KEY' },
    { name: 'a key that is not PEM', options: { publicKeyPem: 'garbage' }, code: 'PKI_ERR_CSR_KEY' },
  ];
  for (const { name, options, code } of refusedServerCertificates) {
    it(`authority - refuses a server certificate with ${name}`, async () => {
      await assert.rejects(
        issueServerCertificate({
          ca: pki.ca,
          publicKeyPem: options.publicKeyPem ?? serverKeys.publicKeyPem,
          dnsNames: options.dnsNames ?? ['localhost'],
          ipAddresses: options.ipAddresses ?? [],
          lifetimeDays: options.lifetimeDays ?? 1,
        }),
        isCode(code),
      );
    });
  }
});
