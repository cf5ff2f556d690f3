/**
 * The relay's certificate authority at run time: opened from the state directory that
 * `dmz-pki init` made, with the CA key decrypted in memory only. It supplies the agent listener's
 * TLS material, certificate renewal, and the enrollment issuer.
 */
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { parseDuration } from '../../pki/duration.ts';
import { CertificateIssuer } from '../../pki/issuance.ts';
import { publishedCrlIsStale, revokedSerials, writeCrl } from '../../pki/revocation.ts';
import { explainPassphraseError, PASSPHRASE_ENV, readPassphrase } from '../../pki/passphrase.ts';
import { DATABASE_SIDE_FILES, STATE_FILES, type StateFile } from '../../pki/state-layout.ts';
import { refuseOtherOwner, type StateOpener } from '../../pki/state-owner.ts';
import { openState, type PkiState } from '../../pki/state.ts';
import type { CertificateAuthority } from '../../pki/authority.ts';
import { quote } from '../protocol/command-line.ts';
import { DmzError } from '../protocol/errors.ts';
import type { ProcessLock } from '../protocol/process-lock.ts';
import type { AuditLog } from './audit.ts';
import type { RelayConfig } from './config.ts';
import type { CertificateRenewer } from './context.ts';
import { recordCrlReissue } from './pki-upkeep.ts';
import { TICKET_KEY_FILE } from './session-tickets.ts';
import { lockStateDirectory, STATE_LOCK_FILE } from './state-lock.ts';
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
  /** Set when a stale lock (its relay gone) was taken over at start: worth a line in the log. */
  readonly staleLockOf: number | undefined;
  /** Closes the store and releases the state directory's lock. */
  close(): void;
}

/** The CA's files the relay reads or replaces: all but the token-signing key, which dmz-pki alone uses. */
const RELAY_CA_FILES: readonly StateFile[] = [
  'caCertificate',
  'caKey',
  'relayCertificate',
  'relayKey',
  'crl',
  'tokenVerifyKey',
  'database',
];

/**
 * What the relay opens in its state directory: those, the store's side files, its session ticket
 * keys and its lock. Not the PKI audit log either, which dmz-pki alone writes: a file of another
 * user that only dmz-pki opens stops dmz-pki, not the plant's only path between its networks.
 */
const RELAY_STATE_OPENER: StateOpener = {
  command: 'dmz-relay --config ...',
  service: 'dmz-relay',
  files: [
    ...RELAY_CA_FILES.map((file) => STATE_FILES[file]),
    ...DATABASE_SIDE_FILES,
    TICKET_KEY_FILE,
    STATE_LOCK_FILE,
  ],
};

/**
 * Refuses a state directory of another user, or a file in it another user left, as the relay
 * sees it (pki/state-owner.ts): run before it writes anything, its audit log first.
 */
export function refuseOtherStateOwner(stateDir: string): void {
  refuseOtherOwner(stateDir, RELAY_STATE_OPENER);
}

const PASSPHRASE_SETTING = 'pki.passphraseFile';
const HOW_TO_GIVE_PASSPHRASE = `${PASSPHRASE_SETTING} in the configuration or the ${PASSPHRASE_ENV} environment variable`;

/** `audit` records the CRL reissued at start, before the file is replaced (pki-upkeep.ts). */
export async function openRelayPki(
  config: RelayConfig,
  audit: AuditLog,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RelayPki> {
  const state = await openRelayState(config);
  let lock: ProcessLock | undefined;
  try {
    lock = lockStateDirectory(config.state);
    refuseOtherTrustDomain(config, state);
    const passphrase = await readPassphrase({
      file: config.pki.passphraseFile,
      fileSetting: PASSPHRASE_SETTING,
      env,
    });
    const ca = await explainPassphraseError('CA key', passphrase, HOW_TO_GIVE_PASSPHRASE, () =>
      state.loadCa(passphrase),
    );
    const crlValidityMs = parseDuration(config.pki.crlValidity) ?? 0;
    // Checked against the store at every start: a revocation recorded while the relay was down
    // (`dmz-pki revoke` without the passphrase cannot sign a CRL) must hold from the first
    // handshake, and a stale CRL (past nextUpdate) would make OpenSSL refuse every agent. A
    // current CRL is left as it is, so a relay that cannot start (its port in use) changes nothing.
    const now = new Date();
    if (await publishedCrlIsStale(state.stateDir, state.store, now, crlValidityMs)) {
      await writeCrl({
        stateDir: state.stateDir,
        store: state.store,
        ca,
        now,
        validityMs: crlValidityMs,
        record: (crl) => recordCrlReissue(audit, 'start', crl),
      });
    }
    const revoked = revokedSerials(state.store);
    const issuer = new CertificateIssuer(state, ca, parseDuration(config.pki.agentCertificateLifetime) ?? 0);
    const heldLock = lock;
    return {
      state,
      ca,
      issuer,
      renewer: createRateLimitedRenewer(issuer),
      tls: await loadTlsMaterial(config.state),
      revokedSerials: revoked,
      crlValidityMs,
      staleLockOf: lock.tookOverFrom,
      close() {
        state.close();
        heldLock.release();
      },
    };
  } catch (error) {
    state.close();
    lock?.release();
    throw error;
  }
}

/** The CA state, or an error that says how to make it for this relay. */
async function openRelayState(config: RelayConfig): Promise<PkiState> {
  try {
    return await openState(config.state, RELAY_STATE_OPENER);
  } catch (error) {
    if (!(error instanceof DmzError) || error.code !== 'PKI_ERR_NOT_INITIALIZED') throw error;
    const dir = quote(config.state);
    throw new DmzError('PKI_ERR_NOT_INITIALIZED', `no certificate authority in the state directory ${dir}`, {
      hint:
        `create it with 'dmz-pki --state ${dir} init --trust-domain ${config.trustDomain} --dns NAME', ` +
        'or correct "state" in the configuration (or --state)',
    });
  }
}

/**
 * The CA issues identities in its own trust domain only; a relay configured for another would
 * refuse every agent it enrolls, at every connection. Refused at start instead.
 */
function refuseOtherTrustDomain(config: RelayConfig, state: PkiState): void {
  if (config.trustDomain === state.trustDomain) return;
  throw new DmzError(
    'CONFIG_ERR_TRUST_DOMAIN',
    `trustDomain ${quote(config.trustDomain)} is not the trust domain of the CA in ${quote(config.state)} (${quote(state.trustDomain)})`,
    {
      hint: `set trustDomain: ${state.trustDomain} in the configuration, or point "state" at a CA made for ${config.trustDomain}`,
    },
  );
}

/**
 * Renewals per agent name per window. An honest agent renews once at about two thirds of its
 * certificate's lifetime and retries a failure no sooner than 10 s later (agents/renewal.ts); six
 * leave it room for that, while an agent renewing again and again (say over a connection whose
 * certificate it already renewed) cannot make the CA sign, and fsync twice, more often.
 */
const RENEWALS_PER_AGENT = 6;
/**
 * An hour, or the certificate lifetime when that is shorter (1 minute at the least, in tests and
 * demos): an agent that must renew every few minutes still gets its six per lifetime.
 */
const RENEWAL_WINDOW_MAX_MS = 3_600_000;

function createRateLimitedRenewer(issuer: CertificateIssuer): CertificateRenewer {
  const windowMs = Math.min(RENEWAL_WINDOW_MAX_MS, issuer.lifetimeMs);
  const renewals = new RateLimiterMemory({
    points: RENEWALS_PER_AGENT,
    duration: Math.max(1, Math.ceil(windowMs / 1000)),
  });
  return {
    async renew(identity, serialHex, csrPem) {
      try {
        await renewals.consume(identity.name);
      } catch (rejection) {
        // A RateLimiterRes means "limited"; anything else is a bug worth surfacing.
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        throw new DmzError('RELAY_ERR_RATE_LIMITED', 'too many renewals for this agent');
      }
      const issued = await issuer.renew(identity, serialHex, csrPem);
      return { certificatePem: issued.certPem, caPem: issued.caPem, serialHex: issued.serialHex };
    },
  };
}
