/**
 * The relay's certificate authority at run time: opened from the state directory that
 * `dmz-pki init` made, with the CA key decrypted in memory only. It supplies the agent listener's
 * TLS material, certificate renewal, and the enrollment issuer.
 */
import { readFile } from 'node:fs/promises';
import { parseDuration } from '../../pki/duration.ts';
import { CertificateIssuer } from '../../pki/issuance.ts';
import { revokedSerials, writeCrl } from '../../pki/revocation.ts';
import { openState, PASSPHRASE_ENV, type PkiState } from '../../pki/state.ts';
import type { CertificateAuthority } from '../../pki/authority.ts';
import { DmzError } from '../protocol/errors.ts';
import type { RelayConfig } from './config.ts';
import type { CertificateRenewer } from './context.ts';
import { loadTlsMaterial, type RelayTlsMaterial } from './tls.ts';

export interface RelayPki {
  readonly state: PkiState;
  readonly ca: CertificateAuthority;
  readonly issuer: CertificateIssuer;
  readonly renewer: CertificateRenewer;
  readonly tls: RelayTlsMaterial;
  /** Every serial revoked so far, also checked at each new connection (a resumed TLS session). */
  readonly revokedSerials: ReadonlySet<string>;
  readonly crlValidityMs: number;
}

export async function openRelayPki(config: RelayConfig): Promise<RelayPki> {
  const state = await openState(config.state);
  try {
    const ca = await state.loadCa(await readPassphrase(config.pki.passphraseFile));
    const crlValidityMs = parseDuration(config.pki.crlValidity) ?? 0;
    // Published from the store at every start: a revocation recorded while the relay was down
    // (`dmz-pki revoke` without the passphrase cannot sign a CRL) must hold from the first
    // handshake, and a stale CRL (past nextUpdate) would make OpenSSL refuse every agent.
    await writeCrl(state.stateDir, state.store, ca, new Date(), crlValidityMs);
    const revoked = revokedSerials(state.store);
    const issuer = new CertificateIssuer(state, ca, parseDuration(config.pki.agentCertificateLifetime) ?? 0);
    return {
      state,
      ca,
      issuer,
      renewer: {
        async renew(identity, serialHex, csrPem) {
          const issued = await issuer.renew(identity, serialHex, csrPem);
          return { certificatePem: issued.certPem, caPem: issued.caPem, serialHex: issued.serialHex };
        },
      },
      tls: await loadTlsMaterial(config.state),
      revokedSerials: revoked,
      crlValidityMs,
    };
  } catch (error) {
    state.close();
    throw error;
  }
}

async function readPassphrase(file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return process.env[PASSPHRASE_ENV];
  try {
    return (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
  } catch (cause) {
    throw new DmzError('PKI_ERR_PASSPHRASE', `cannot read the passphrase file ${file}`, { cause });
  }
}
