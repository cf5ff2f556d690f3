import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CertificateAuthority } from '../../pki/authority.ts';
import { createCertificateSigningRequest } from '../../pki/csr.ts';
import { CertificateIssuer, type IssuedAgentCertificate } from '../../pki/issuance.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair } from '../../pki/keys.ts';
import { initializeState, openState, type PkiState } from '../../pki/state.ts';
import { openPkiStore } from '../../pki/store.ts';
import { createEnrollmentToken } from '../../pki/tokens.ts';
import type { ErrorCode } from '../../relay/protocol/errors.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** 40 minutes into a 1 h certificate: where an agent renews (2/3 of the lifetime), past half of it. */
const renewalDue = (): Date => new Date(Date.now() + 40 * MINUTE);

describe('pki/issuance', () => {
  let dir: string;
  let state: PkiState;
  let issuer: CertificateIssuer;
  let csr: string;
  let signingKey: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-issuance-'));
    await initializeState({
      stateDir: join(dir, 'state'),
      trustDomain: 'plant.example',
      dnsNames: ['localhost'],
      ipAddresses: [],
      enrollmentUrls: ['https://localhost:8444'],
      caKeyBits: 2048,
    });
    state = await openState(join(dir, 'state'));
    issuer = new CertificateIssuer(state, await state.loadCa(), HOUR);
    signingKey = await state.loadTokenSigningKey();
    const keys = await generateRsaKeyPair(AGENT_KEY_BITS);
    csr = createCertificateSigningRequest({ ...keys, commonName: 'whatever-the-csr-says' });
  });
  after(async () => {
    state.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function token(name: string, overrides: { caFingerprint?: string } = {}): Promise<string> {
    const created = await createEnrollmentToken({
      signingKeyPem: signingKey,
      issuer: state.tokenIssuer,
      name,
      role: 'ot',
      ttlSeconds: 3600,
      urls: state.enrollmentUrls,
      caFingerprint: overrides.caFingerprint ?? state.caFingerprint,
    });
    state.store.recordToken({
      jti: created.jti,
      name,
      role: 'ot',
      createdAt: new Date(),
      expiresAt: created.expiresAt,
    });
    return created.token;
  }

  const enroll = async (name: string): Promise<IssuedAgentCertificate> =>
    issuer.enroll(await token(name), csr);

  it('takes the identity from the token, not the CSR, and records the certificate', async () => {
    const issued = await enroll('press-7');
    const certificate = new X509Certificate(issued.certPem);
    assert.equal(certificate.subjectAltName, 'URI:spiffe://plant.example/agent/ot/press-7');
    assert.equal(certificate.subject, 'CN=press-7');
    const [record] = state.store.findCertificates(issued.serialHex);
    assert.equal(record?.status, 'valid');
    assert.equal(Date.parse(certificate.validTo) - Date.parse(certificate.validFrom), HOUR + 60_000);
  });

  it('refuses a token pinned to another CA even when its signature is ours', async () => {
    const foreign = await token('press-8', { caFingerprint: `sha256:${'0'.repeat(64)}` });
    await assert.rejects(issuer.enroll(foreign, csr), { code: 'PKI_ERR_TOKEN_INVALID' });
  });

  it('renews for the same identity and links the old certificate to the new one', async () => {
    const issued = await enroll('press-9');
    const renewed = await issuer.renew(issued.identity, issued.serialHex, csr, renewalDue());
    assert.notEqual(renewed.serialHex, issued.serialHex);
    assert.deepEqual(renewed.identity, issued.identity);
    assert.equal(state.store.findCertificates(issued.serialHex)[0]?.replacedBy, renewed.serialHex);
  });

  it('refuses a renewal whose certificate `dmz-pki revoke` revokes while it is being signed, and records nothing', async () => {
    const issued = await enroll('press-10');
    const ca = await state.loadCa();
    // Another process's connection, as the CLI's is; it revokes while the CA key is in use.
    const cli = openPkiStore(state.stateDir);
    const revokingCa: CertificateAuthority = {
      certPem: ca.certPem,
      get keyPem() {
        cli.revokeCertificates('press-10', 'keyCompromise', new Date());
        return ca.keyPem;
      },
    };
    try {
      const racing = new CertificateIssuer(state, revokingCa, HOUR);
      await assert.rejects(racing.renew(issued.identity, issued.serialHex, csr, renewalDue()), {
        code: 'PKI_ERR_RENEWAL_REFUSED',
        message: 'the certificate was revoked during renewal',
      });
    } finally {
      cli.close();
    }
    const records = state.store.findCertificates('press-10');
    assert.deepEqual(
      records.map((record) => [record.serialHex, record.status, record.replacedBy]),
      [[issued.serialHex, 'revoked', null]],
    );
  });

  const refusals: [string, (issued: IssuedAgentCertificate) => Promise<unknown>, ErrorCode, RegExp][] = [
    [
      'an expired certificate',
      (issued) => issuer.renew(issued.identity, issued.serialHex, csr, new Date(Date.now() + 2 * HOUR)),
      'PKI_ERR_RENEWAL_REFUSED',
      /expired/,
    ],
    [
      'a revoked certificate',
      (issued) => {
        state.store.revokeCertificates(issued.serialHex, 'test', new Date());
        return issuer.renew(issued.identity, issued.serialHex, csr, renewalDue());
      },
      'PKI_ERR_RENEWAL_REFUSED',
      /revoked/,
    ],
    [
      'right after issuance',
      (issued) => issuer.renew(issued.identity, issued.serialHex, csr),
      'PKI_ERR_RENEWAL_REFUSED',
      /^too early: renew after half the certificate lifetime$/,
    ],
    [
      // 1 h plus the minute of backdating: half-life is 29.5 minutes after issuance.
      'just before half its lifetime',
      (issued) => issuer.renew(issued.identity, issued.serialHex, csr, new Date(Date.now() + 29 * MINUTE)),
      'PKI_ERR_RENEWAL_REFUSED',
      /^too early/,
    ],
    [
      'a serial this CA never issued',
      (issued) => issuer.renew(issued.identity, 'abcdef', csr, renewalDue()),
      'PKI_ERR_RENEWAL_REFUSED',
      /not one this CA issued/,
    ],
    [
      "another agent's serial",
      (issued) =>
        issuer.renew({ ...issued.identity, name: 'someone-else' }, issued.serialHex, csr, renewalDue()),
      'PKI_ERR_RENEWAL_REFUSED',
      /not one this CA issued/,
    ],
    [
      'a role change',
      (issued) => issuer.renew({ ...issued.identity, role: 'it' }, issued.serialHex, csr, renewalDue()),
      'PKI_ERR_RENEWAL_REFUSED',
      /not one this CA issued/,
    ],
    [
      'a garbage CSR',
      (issued) => issuer.renew(issued.identity, issued.serialHex, 'not a csr', renewalDue()),
      'PKI_ERR_CSR_INVALID',
      /./,
    ],
  ];
  let agent = 0;
  for (const [name, attempt, code, message] of refusals) {
    it(`refuses to renew ${name} (${code})`, async () => {
      const issued = await enroll(`renewer-${++agent}`);
      await assert.rejects(attempt(issued), { code, message });
    });
  }
});
