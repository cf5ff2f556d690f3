import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { CLOCK_SKEW_BACKDATE_MS } from '../../pki/authority.ts';
import { DAY_MS } from '../../pki/lifetimes.ts';
import { issueAgentCertificate } from '../../pki/certificate-template.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { identityFromSubjectAltName } from '../../relay/protocol/identity.ts';
import type { AgentIdentity } from '../../relay/protocol/identity.ts';
import { createTestPki, opensslCertificateText, runOpenssl } from '../support/test-pki.ts';
import type { TestPki } from '../support/test-pki.ts';

const isCode = (code: string) => (error: unknown) => error instanceof DmzError && error.code === code;

/** Exactly what the agent template puts in, as openssl prints it. */
const AGENT_EXTENSIONS = [
  'X509v3 Authority Key Identifier',
  'X509v3 Basic Constraints',
  'X509v3 Extended Key Usage',
  'X509v3 Key Usage',
  'X509v3 Subject Alternative Name',
  'X509v3 Subject Key Identifier',
];

describe('pki/certificate-template', () => {
  let pki: TestPki;
  let publicKeyPem: string;
  before(async () => {
    pki = await createTestPki();
    publicKeyPem = new X509Certificate(pki.relay.certPem).publicKey
      .export({ type: 'spki', format: 'pem' })
      .toString();
  });
  const identity: AgentIdentity = { trustDomain: 'test.dmz', role: 'ot', name: 'plc-7' };

  it('template - carries exactly CA:FALSE, digitalSignature, clientAuth and one URI SAN', async () => {
    const issued = await issueAgentCertificate({ ca: pki.ca, publicKeyPem, identity, lifetimeMs: DAY_MS });
    const { text, extensions } = await opensslCertificateText(issued.certPem);
    assert.deepEqual([...extensions.keys()].sort(), AGENT_EXTENSIONS);
    assert.deepEqual(extensions.get('X509v3 Basic Constraints'), { critical: true, value: 'CA:FALSE' });
    assert.deepEqual(extensions.get('X509v3 Key Usage'), { critical: true, value: 'Digital Signature' });
    assert.deepEqual(extensions.get('X509v3 Extended Key Usage'), {
      critical: false,
      value: 'TLS Web Client Authentication',
    });
    assert.deepEqual(extensions.get('X509v3 Subject Alternative Name'), {
      critical: false,
      value: 'URI:spiffe://test.dmz/agent/ot/plc-7',
    });
    const caKeyId = (await opensslCertificateText(pki.ca.certPem)).extensions.get(
      'X509v3 Subject Key Identifier',
    );
    assert.equal(extensions.get('X509v3 Authority Key Identifier')?.value, caKeyId?.value);
    assert.match(text, /Subject: CN = plc-7\n/);
    assert.match(text, /Issuer: CN = dmz-relay test CA\n/);
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    // The relay reads the identity back with the shared parser.
    const cert = new X509Certificate(issued.certPem);
    assert.deepEqual(identityFromSubjectAltName(cert.subjectAltName, 'test.dmz'), identity);
  });

  it('template - chains to the CA for clientAuth and not for serverAuth', async () => {
    const issued = await issueAgentCertificate({ ca: pki.ca, publicKeyPem, identity, lifetimeMs: DAY_MS });
    const files = { 'ca.pem': pki.ca.certPem, 'agent.pem': issued.certPem };
    const asClient = await runOpenssl(
      ['verify', '-purpose', 'sslclient', '-CAfile', 'ca.pem', 'agent.pem'],
      files,
    );
    assert.equal(asClient.exitCode, 0, asClient.stderr);
    assert.match(asClient.stdout, /agent.pem: OK/);
    const asServer = await runOpenssl(
      ['verify', '-purpose', 'sslserver', '-CAfile', 'ca.pem', 'agent.pem'],
      files,
    );
    assert.notEqual(asServer.exitCode, 0);
    // X509_V_ERR_INVALID_PURPOSE.
    assert.match(asServer.stdout + asServer.stderr, /error 26 at 0 depth/);
  });

  it('template - serials are positive, 128-bit, unique per certificate even for one key', async () => {
    const issued = await Promise.all(
      Array.from({ length: 8 }, () =>
        issueAgentCertificate({ ca: pki.ca, publicKeyPem, identity, lifetimeMs: DAY_MS }),
      ),
    );
    const serials = issued.map((certificate) => certificate.serialHex);
    assert.equal(new Set(serials).size, serials.length);
    for (const certificate of issued) {
      assert.match(certificate.serialHex, /^[4-7][0-9a-f]{31}$/);
      assert.equal(
        new X509Certificate(certificate.certPem).serialNumber.toLowerCase(),
        certificate.serialHex,
      );
    }
  });

  it('template - starts one minute back for clock skew and ends after lifetimeMs (whole seconds)', async () => {
    const now = new Date('2031-06-15T08:30:00.900Z');
    const issued = await issueAgentCertificate({
      ca: pki.ca,
      publicKeyPem,
      identity,
      lifetimeMs: 3 * DAY_MS,
      now,
    });
    const wholeNow = Date.parse('2031-06-15T08:30:00Z');
    assert.equal(issued.notBefore.getTime(), wholeNow - CLOCK_SKEW_BACKDATE_MS);
    assert.equal(issued.notAfter.getTime(), wholeNow + 3 * DAY_MS);
    const cert = new X509Certificate(issued.certPem);
    assert.equal(new Date(cert.validFrom).getTime(), issued.notBefore.getTime());
    assert.equal(new Date(cert.validTo).getTime(), issued.notAfter.getTime());
  });

  const validityOverrides: ReadonlyArray<{
    name: string;
    notBefore: number;
    notAfter: number;
    error: RegExp;
  }> = [
    // X509_V_ERR_CERT_HAS_EXPIRED and X509_V_ERR_CERT_NOT_YET_VALID.
    { name: 'expired', notBefore: -2 * DAY_MS, notAfter: -DAY_MS, error: /error 10 at 0 depth/ },
    { name: 'not yet valid', notBefore: DAY_MS, notAfter: 2 * DAY_MS, error: /error 9 at 0 depth/ },
  ];
  for (const { name, notBefore, notAfter, error } of validityOverrides) {
    it(`template - notBefore/notAfter overrides make a ${name} certificate that openssl refuses`, async () => {
      const issued = await issueAgentCertificate({
        ca: pki.ca,
        publicKeyPem,
        identity,
        lifetimeMs: DAY_MS,
        notBefore: new Date(Date.now() + notBefore),
        notAfter: new Date(Date.now() + notAfter),
      });
      const result = await runOpenssl(['verify', '-CAfile', 'ca.pem', 'agent.pem'], {
        'ca.pem': pki.ca.certPem,
        'agent.pem': issued.certPem,
      });
      assert.notEqual(result.exitCode, 0);
      assert.match(result.stdout + result.stderr, error);
    });
  }

  const weakKeyPem = generateKeyPairSync('rsa', { modulusLength: 1024 })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();
  const ecKeyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();
  const refused: ReadonlyArray<{
    name: string;
    change: {
      identity?: AgentIdentity;
      lifetimeMs?: number;
      publicKeyPem?: string;
      notBefore?: Date;
      notAfter?: Date;
    };
    code: string;
  }> = [
    {
      name: 'an upper-case agent name',
      change: { identity: { ...identity, name: 'PLC-7' } },
      code: 'PKI_ERR_CERT_INVALID',
    },
    {
      name: 'a name with a slash',
      change: { identity: { ...identity, name: 'plc/7' } },
      code: 'PKI_ERR_CERT_INVALID',
    },
    { name: 'an empty name', change: { identity: { ...identity, name: '' } }, code: 'PKI_ERR_CERT_INVALID' },
    {
      name: 'an unknown role',
      change: { identity: { ...identity, role: 'admin' as AgentIdentity['role'] } },
      code: 'PKI_ERR_CERT_INVALID',
    },
    {
      name: 'a trust domain with a path',
      change: { identity: { ...identity, trustDomain: 'test.dmz/agent/it' } },
      code: 'PKI_ERR_CERT_INVALID',
    },
    { name: 'a zero lifetime', change: { lifetimeMs: 0 }, code: 'PKI_ERR_CERT_INVALID' },
    { name: 'a NaN lifetime', change: { lifetimeMs: Number.NaN }, code: 'PKI_ERR_CERT_INVALID' },
    {
      name: 'notAfter before notBefore',
      change: { notBefore: new Date(Date.now()), notAfter: new Date(Date.now() - DAY_MS) },
      code: 'PKI_ERR_CERT_INVALID',
    },
    { name: 'an RSA-1024 key', change: { publicKeyPem: weakKeyPem }, code: 'PKI_ERR_CSR_KEY' },
    { name: 'an EC key', change: { publicKeyPem: ecKeyPem }, code: 'PKI_ERR_CSR_KEY' },
    {
      name: 'a private key instead of a public one',
      change: { publicKeyPem: 'private' },
      code: 'PKI_ERR_CSR_KEY',
    },
  ];
  for (const { name, change, code } of refused) {
    it(`template - refuses ${name}`, async () => {
      const { publicKeyPem: changedKey, ...rest } = change;
      await assert.rejects(
        issueAgentCertificate({
          ca: pki.ca,
          identity,
          lifetimeMs: DAY_MS,
          ...rest,
          publicKeyPem: changedKey === 'private' ? pki.relay.keyPem : (changedKey ?? publicKeyPem),
        }),
        isCode(code),
      );
    });
  }
});
