/**
 * `dmz-pki revoke NAME|SERIAL`: revokes an agent's certificates in the store (the relay watches
 * it and cuts the agent's live connections), then rewrites the CRL at once when the CA key can be
 * unlocked, so the revocation holds at the next handshake even while the relay is down.
 */
import { DmzError } from '../../relay/protocol/errors.ts';
import type { CertificateRecord, PkiStore } from '../store.ts';
import { describeCertificate } from './agents.ts';
import { defineCommand, invalidArgument, quote, withAuditedState } from './command.ts';
import { inspectCrl, warnStale } from './crl.ts';
import { printJson, printNote } from './output.ts';
import {
  loadCertificateAuthorityIfUnlocked,
  PASSPHRASE_HELP,
  PASSPHRASE_OPTIONS,
  readPassphrase,
} from './passphrase.ts';

/** RFC 5280 section 5.3.1 calls a revocation without a stated reason "unspecified". */
const DEFAULT_REASON = 'unspecified';
/** A reason is a note for the audit trail: one line of a listing, not a document. */
const MAX_REASON_LENGTH = 200;
const CONTROL_CHARACTER = /\p{Cc}/u;

export const revokeCommand = defineCommand({
  words: ['revoke'],
  summary: "revoke an agent's certificates (by name) or one certificate (by serial)",
  usage: `Usage: dmz-pki --state DIR revoke NAME|SERIAL [--reason TEXT] [options]

Revokes every unrevoked certificate of agent NAME and its outstanding enrollment tokens, or the
one certificate with SERIAL (hex), and prints what was revoked. The running relay refuses them at once and closes their
connections. The CRL file is rewritten now if the CA key can be unlocked; if it is encrypted
and no passphrase is given, the running relay publishes it.

Options:
  --reason TEXT        why, for the audit trail (default: ${DEFAULT_REASON})
${PASSPHRASE_HELP}
  --json               print {revoked: [...], tokensRevoked, crlWritten}`,
  options: {
    reason: { type: 'string' },
    ...PASSPHRASE_OPTIONS,
  },
  operands: ['NAME|SERIAL'],
  async run({ values, operands: [target = ''], stateDir, env, output }) {
    const reason = checkReason(values.reason ?? DEFAULT_REASON);
    const passphrase = await readPassphrase(values['passphrase-file'], env);
    await withAuditedState(stateDir, 'revoke', async (state, audit) => {
      audit.about({ target, reason });
      // Unlock first: a wrong passphrase fails before anything changes.
      const ca = await loadCertificateAuthorityIfUnlocked(state, passphrase);
      const { tokensRevoked, revoked } = audit.commit(
        () => {
          // Tokens first: an outstanding token for this name must not enroll it again behind our back.
          const tokens = state.store.revokeTokensOf(target.toLowerCase(), new Date());
          return { tokensRevoked: tokens, revoked: revokeInStore(state.store, target, reason, tokens) };
        },
        (done) => ({ serials: done.revoked.map((c) => c.serialHex), tokensRevoked: done.tokensRevoked }),
      );
      const { writeCrl } = await import('../revocation.ts');
      // After the revocation's record: the CRL publishes only revocations already recorded.
      if (ca !== undefined) await writeCrl({ stateDir: state.stateDir, store: state.store, ca });
      else {
        const crl = await inspectCrl(state);
        if (crl.needsReissue) warnStale(output, crl);
      }
      if (values.json === true) {
        printJson(output, {
          revoked: revoked.map(describeCertificate),
          tokensRevoked,
          crlWritten: ca !== undefined,
        });
        return;
      }
      if (revoked.length === 0 && tokensRevoked === 0) {
        printNote(output, `${quote(target)}: already revoked, nothing changed`);
      }
      if (tokensRevoked > 0)
        output.stdout(`revoked ${tokensRevoked} outstanding enrollment token(s) for ${target}\n`);
      for (const certificate of revoked) {
        output.stdout(`revoked ${certificate.serialHex} (${certificate.name}, ${certificate.role})\n`);
      }
    });
  },
});

function revokeInStore(
  store: PkiStore,
  target: string,
  reason: string,
  tokensRevoked: number,
): CertificateRecord[] {
  try {
    return store.revokeCertificates(target, reason, new Date());
  } catch (error) {
    // An agent that never enrolled: revoking its tokens was the whole job.
    if (error instanceof DmzError && error.code === 'PKI_ERR_NOT_FOUND' && tokensRevoked > 0) return [];
    if (error instanceof DmzError && error.code === 'PKI_ERR_NOT_FOUND') {
      throw new DmzError(
        'PKI_ERR_NOT_FOUND',
        `no certificate issued to an agent or with a serial ${quote(target)}`,
        {
          hint: "'dmz-pki agents' lists every agent and serial",
        },
      );
    }
    throw error;
  }
}

function checkReason(reason: string): string {
  if (reason.length === 0 || reason.length > MAX_REASON_LENGTH || CONTROL_CHARACTER.test(reason)) {
    throw invalidArgument(`--reason must be 1 to ${MAX_REASON_LENGTH} characters on one line`);
  }
  return reason;
}
