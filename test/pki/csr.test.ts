import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { before, describe, it } from 'node:test';
import forge from 'node-forge';
import { DAY_MS } from '../../pki/lifetimes.ts';
import { issueAgentCertificate } from '../../pki/certificate-template.ts';
import {
  MAX_CSR_BYTES,
  createCertificateSigningRequest,
  parseCertificateSigningRequest,
} from '../../pki/csr.ts';
import { spkiFingerprint } from '../../pki/fingerprint.ts';
import { generateRsaKeyPair } from '../../pki/keys.ts';
import type { RsaKeyPair } from '../../pki/keys.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { createTestPki, opensslCertificateText, runOpenssl } from '../support/test-pki.ts';
import type { TestPki } from '../support/test-pki.ts';

const CSR_LABEL = 'CERTIFICATE REQUEST';

function derOf(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

function pemOf(der: Buffer, label = CSR_LABEL): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Runs `openssl req -new` with a fresh key of the given kind and returns the CSR PEM. */
async function opensslCsr(keyArgs: readonly string[], extra: readonly string[] = []): Promise<string> {
  const result = await runOpenssl([
    'req',
    '-new',
    ...keyArgs,
    '-nodes',
    '-subj',
    '/CN=x',
    '-keyout',
    'key.pem',
    ...extra,
  ]);
  assert.equal(result.exitCode, 0, result.stderr);
  return result.stdout;
}

describe('pki/csr', () => {
  let pki: TestPki;
  let agentKeys: RsaKeyPair;
  let otherKeys: RsaKeyPair;
  let goodCsr: string;
  const hostile = new Map<string, string>();

  before(async () => {
    [pki, agentKeys, otherKeys] = await Promise.all([
      createTestPki(),
      generateRsaKeyPair(2048),
      generateRsaKeyPair(2048),
    ]);
    goodCsr = createCertificateSigningRequest({ ...agentKeys, commonName: 'plc-csr' });
    const goodDer = derOf(goodCsr);

    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
    hostile.set(
      'RSA-1024',
      createCertificateSigningRequest({
        privateKeyPem: weak.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        publicKeyPem: weak.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        commonName: 'weak',
      }),
    );
    hostile.set('EC P-256', await opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']));
    hostile.set('RSA-PSS', await opensslCsr(['-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048']));
    hostile.set('SHA-1 signature', await opensslCsr(['-newkey', 'rsa:2048', '-sha1']));

    const flipped = Buffer.from(goodDer);
    flipped.writeUInt8(flipped.readUInt8(flipped.length - 1) ^ 0x01, flipped.length - 1);
    hostile.set('one flipped signature byte', pemOf(flipped));

    const renamed = Buffer.from(goodDer);
    const nameAt = renamed.indexOf('plc-csr');
    renamed.write('plc-CSR', nameAt, 'latin1');
    hostile.set('a subject changed after signing', pemOf(renamed));

    hostile.set(
      'a key it does not hold (signed by another key)',
      createCertificateSigningRequest({
        privateKeyPem: otherKeys.privateKeyPem,
        publicKeyPem: agentKeys.publicKeyPem,
        commonName: 'plc-csr',
      }),
    );

    // Outer SEQUENCE length in long form with a needless leading zero octet: valid BER, not DER.
    assert.equal(goodDer.readUInt8(1), 0x82);
    hostile.set(
      'a non-DER (BER) length',
      pemOf(Buffer.concat([Buffer.from([0x30, 0x83, 0x00]), goodDer.subarray(2)])),
    );
    hostile.set(
      'trailing bytes after the request',
      pemOf(Buffer.concat([goodDer, Buffer.from([0x05, 0x00])])),
    );
  });

  it('csr - round trip: what the agent makes, openssl verifies and the relay parses', async () => {
    const check = await runOpenssl(['req', '-in', 'csr.pem', '-verify', '-noout'], { 'csr.pem': goodCsr });
    assert.equal(check.exitCode, 0, check.stderr);
    assert.match(check.stderr + check.stdout, /verify OK/);
    const parsed = parseCertificateSigningRequest(goodCsr);
    assert.equal(parsed.commonName, 'plc-csr');
    assert.match(parsed.publicKeyPem, /^-----BEGIN PUBLIC KEY-----\n/);
    assert.equal(spkiFingerprint(parsed.publicKeyPem), spkiFingerprint(agentKeys.publicKeyPem));
  });

  it('csr - parses an RSA CSR made by openssl req', async () => {
    const result = await runOpenssl([
      'req',
      '-new',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/O=Plant 7/CN=hmi-3',
      '-keyout',
      'key.pem',
      '-pubkey',
    ]);
    assert.equal(result.exitCode, 0, result.stderr);
    const [publicKeyPem, csrPem] = result.stdout.split(/(?<=-----END PUBLIC KEY-----\n)/);
    const parsed = parseCertificateSigningRequest(csrPem!);
    assert.equal(parsed.commonName, 'hmi-3');
    assert.equal(spkiFingerprint(parsed.publicKeyPem), spkiFingerprint(publicKeyPem!));
  });

  it('csr - a CN longer than 64 characters is not reported, the request still parses', () => {
    const csr = createCertificateSigningRequest({ ...agentKeys, commonName: 'x'.repeat(65) });
    assert.equal(parseCertificateSigningRequest(csr).commonName, undefined);
  });

  it(`csr - the size cap is exactly MAX_CSR_BYTES (${MAX_CSR_BYTES})`, () => {
    const atCap = goodCsr + ' '.repeat(MAX_CSR_BYTES - Buffer.byteLength(goodCsr));
    assert.equal(parseCertificateSigningRequest(atCap).commonName, 'plc-csr');
    assert.throws(
      () => parseCertificateSigningRequest(`${atCap} `),
      (error: unknown) => error instanceof DmzError && error.code === 'PKI_ERR_CSR_TOO_LARGE',
    );
  });

  it('csr - a CSR asking for CA:TRUE, extra SANs and serverAuth parses, and the certificate carries none of it', async () => {
    const csr = forge.pki.createCertificationRequest();
    csr.publicKey = forge.pki.publicKeyFromPem(agentKeys.publicKeyPem);
    csr.setSubject([{ name: 'commonName', value: 'dmz-relay' }]);
    csr.setAttributes([
      {
        name: 'extensionRequest',
        extensions: [
          { name: 'basicConstraints', cA: true, pathLenConstraint: 5, critical: true },
          { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
          { name: 'extKeyUsage', serverAuth: true, clientAuth: true, codeSigning: true },
          {
            name: 'subjectAltName',
            altNames: [
              { type: 2, value: 'relay.plant.example' },
              { type: 6, value: 'spiffe://test.dmz/agent/it/admin' },
              { type: 7, ip: '10.0.0.1' },
            ],
          },
        ],
      },
    ]);
    csr.sign(forge.pki.privateKeyFromPem(agentKeys.privateKeyPem), forge.md.sha256.create());
    const maliciousPem = forge.pki.certificationRequestToPem(csr);
    // The request really asks for all of it...
    const asked = await runOpenssl(['req', '-in', 'csr.pem', '-noout', '-text', '-verify'], {
      'csr.pem': maliciousPem,
    });
    assert.match(asked.stdout, /CA:TRUE, pathlen:5/);
    assert.match(asked.stdout, /TLS Web Server Authentication/);
    assert.match(
      asked.stdout,
      /DNS:relay\.plant\.example, URI:spiffe:\/\/test\.dmz\/agent\/it\/admin, IP Address:10\.0\.0\.1/,
    );

    // ...the relay parses it (proof of possession holds), then issues from its own template only.
    const parsed = parseCertificateSigningRequest(maliciousPem);
    assert.equal(parsed.commonName, 'dmz-relay');
    const issued = await issueAgentCertificate({
      ca: pki.ca,
      publicKeyPem: parsed.publicKeyPem,
      identity: { trustDomain: 'test.dmz', role: 'ot', name: 'plc-csr' },
      lifetimeMs: DAY_MS,
    });
    const { text, extensions } = await opensslCertificateText(issued.certPem);
    for (const forbidden of [
      /CA:TRUE/,
      /pathlen/,
      /Server Authentication/,
      /Code Signing/,
      /DNS:/,
      /IP Address/,
      /admin/,
      /dmz-relay,?\n/,
      /Certificate Sign/,
    ]) {
      assert.doesNotMatch(text.replace(/Issuer: .*\n/, ''), forbidden);
    }
    assert.deepEqual(extensions.get('X509v3 Basic Constraints'), { critical: true, value: 'CA:FALSE' });
    assert.equal(extensions.get('X509v3 Extended Key Usage')?.value, 'TLS Web Client Authentication');
    assert.equal(
      extensions.get('X509v3 Subject Alternative Name')?.value,
      'URI:spiffe://test.dmz/agent/ot/plc-csr',
    );
    assert.match(text, /Subject: CN = plc-csr\n/);
    assert.equal(new X509Certificate(issued.certPem).ca, false);
  });

  const refused: ReadonlyArray<{ name: string; input: () => string; code: string }> = [
    { name: 'an empty string', input: () => '', code: 'PKI_ERR_CSR_INVALID' },
    { name: 'garbage', input: () => 'this is not a certificate request', code: 'PKI_ERR_CSR_INVALID' },
    {
      name: 'a PEM block of garbage',
      input: () => pemOf(Buffer.from('not ASN.1 at all')),
      code: 'PKI_ERR_CSR_INVALID',
    },
    {
      name: 'a 1 MB request',
      input: () => pemOf(Buffer.alloc(1024 * 1024, 0x30)),
      code: 'PKI_ERR_CSR_TOO_LARGE',
    },
    { name: 'two PEM blocks', input: () => goodCsr + goodCsr, code: 'PKI_ERR_CSR_INVALID' },
    {
      name: 'text before the PEM block',
      input: () => `Subject: plc\n${goodCsr}`,
      code: 'PKI_ERR_CSR_INVALID',
    },
    {
      name: 'a certificate instead of a request',
      input: () => pki.relay.certPem,
      code: 'PKI_ERR_CSR_INVALID',
    },
    {
      name: 'a certificate relabelled as a request',
      input: () => pemOf(derOf(pki.relay.certPem)),
      code: 'PKI_ERR_CSR_INVALID',
    },
    {
      name: 'a non-DER (BER) length',
      input: () => hostile.get('a non-DER (BER) length')!,
      code: 'PKI_ERR_CSR_INVALID',
    },
    {
      name: 'trailing bytes after the request',
      input: () => hostile.get('trailing bytes after the request')!,
      code: 'PKI_ERR_CSR_INVALID',
    },
    { name: 'an EC P-256 key', input: () => hostile.get('EC P-256')!, code: 'PKI_ERR_CSR_KEY' },
    { name: 'an RSA-PSS key', input: () => hostile.get('RSA-PSS')!, code: 'PKI_ERR_CSR_KEY' },
    { name: 'an RSA-1024 key', input: () => hostile.get('RSA-1024')!, code: 'PKI_ERR_CSR_KEY' },
    {
      name: 'one flipped signature byte',
      input: () => hostile.get('one flipped signature byte')!,
      code: 'PKI_ERR_CSR_SIGNATURE',
    },
    {
      name: 'a subject changed after signing',
      input: () => hostile.get('a subject changed after signing')!,
      code: 'PKI_ERR_CSR_SIGNATURE',
    },
    {
      name: 'a key it does not hold',
      input: () => hostile.get('a key it does not hold (signed by another key)')!,
      code: 'PKI_ERR_CSR_SIGNATURE',
    },
    {
      name: 'a SHA-1 signature',
      input: () => hostile.get('SHA-1 signature')!,
      code: 'PKI_ERR_CSR_SIGNATURE',
    },
  ];
  for (const { name, input, code } of refused) {
    it(`csr - refuses ${name} with ${code}`, () => {
      assert.throws(
        () => parseCertificateSigningRequest(input()),
        (error: unknown) => error instanceof DmzError && error.code === code,
      );
    });
  }
});
