/**
 * `dmz-pki revoke NAME` wins against an enrollment of NAME being signed. Found by an outside
 * audit: the enrollment consumed its token, signed in the thread pool, then recorded the
 * certificate; a revocation committed in between found the token used and no certificate yet,
 * and the agent just revoked walked away with a valid certificate. Now `revoke NAME` also revokes
 * a token whose certificate is not recorded yet, and recording checks that token in the same
 * transaction (pki/store.ts), as renewal already did for its predecessor.
 *
 * The interleaving is produced as test/pki/issuance.test.ts does for renewal: another process's
 * store connection revokes while the CA key is in use.
 *
 * Property: when `revoke NAME` commits while an enrollment of NAME is being signed, the enrollment
 * leaves no valid certificate of NAME behind (it fails, or its certificate is revoked).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CertificateAuthority } from '../../pki/authority.ts';
import { createCertificateSigningRequest } from '../../pki/csr.ts';
import { CertificateIssuer } from '../../pki/issuance.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair } from '../../pki/keys.ts';
import { initializeState, openState, type PkiState } from '../../pki/state.ts';
import { openPkiStore } from '../../pki/store.ts';
import { createEnrollmentToken } from '../../pki/tokens.ts';

const HOUR = 3_600_000;

describe('pki - revoke NAME while NAME enrolls', () => {
  let dir: string;
  let state: PkiState;
  let ca: CertificateAuthority;
  let csr: string;
  let signingKey: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-audit-revoke-enroll-'));
    await initializeState({
      stateDir: join(dir, 'state'),
      trustDomain: 'plant.example',
      dnsNames: ['localhost'],
      ipAddresses: [],
      enrollmentUrls: ['https://localhost:8444'],
      caKeyBits: 2048,
    });
    state = await openState(join(dir, 'state'));
    ca = await state.loadCa();
    signingKey = await state.loadTokenSigningKey();
    const keys = await generateRsaKeyPair(AGENT_KEY_BITS);
    csr = createCertificateSigningRequest({ ...keys, commonName: 'press-7' });
  });
  after(async () => {
    state.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function token(name: string): Promise<string> {
    const created = await createEnrollmentToken({
      signingKeyPem: signingKey,
      issuer: state.tokenIssuer,
      name,
      role: 'ot',
      ttlSeconds: 3600,
      urls: state.enrollmentUrls,
      caFingerprint: state.caFingerprint,
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

  it('pki - an enrollment being signed when `revoke NAME` commits leaves no valid certificate of NAME', async () => {
    // press-7 is enrolled; a second token for it is outstanding (a re-enrollment, or a leaked one).
    const first = await new CertificateIssuer(state, ca, HOUR).enroll(await token('press-7'), csr);
    const second = await token('press-7');

    // What `dmz-pki revoke press-7` does, from its own process, while the CA key signs.
    const cli = openPkiStore(state.stateDir);
    let revokedWhileSigning = false;
    const revokingCa: CertificateAuthority = {
      certPem: ca.certPem,
      get keyPem() {
        if (!revokedWhileSigning) {
          revokedWhileSigning = true;
          cli.revokeTokensOf('press-7', new Date());
          cli.revokeCertificates('press-7', 'keyCompromise', new Date());
        }
        return ca.keyPem;
      },
    };
    try {
      await new CertificateIssuer(state, revokingCa, HOUR).enroll(second, csr).catch(() => undefined);
    } finally {
      cli.close();
    }
    assert.equal(revokedWhileSigning, true, 'the revocation did not run while the enrollment was signed');
    assert.equal(state.store.findCertificates(first.serialHex)[0]?.status, 'revoked');
    const valid = state.store
      .findCertificates('press-7')
      .filter((record) => record.status === 'valid')
      .map((record) => record.serialHex);
    assert.deepEqual(valid, [], `press-7 was revoked, yet holds a valid certificate: ${valid.join(', ')}`);
  });
});
