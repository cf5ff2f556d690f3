/**
 * `dmz-pki crl`: exports the certificate revocation list (PEM, or DER with --der), reissuing it
 * first when it is due or behind the store and the CA key can be unlocked. Also the one place that
 * judges whether the CRL on disk is current, for `revoke` and `status`.
 */
import { writeFile } from 'node:fs/promises';
import type { CrlSummary } from '../crl-reader.ts';
import { fileError } from '../../relay/protocol/command-line.ts';
import { readState } from '../state-layout.ts';
import type { PkiState } from '../state.ts';
import { defineCommand, usageError, withAuditedState } from './command.ts';
import { formatJson, formatTime, printNote, type Output } from './output.ts';
import {
  loadCertificateAuthorityIfUnlocked,
  PASSPHRASE_ENV,
  PASSPHRASE_HELP,
  PASSPHRASE_OPTIONS,
  readPassphrase,
} from './passphrase.ts';

/** A CRL is public: anyone checking certificates may read it. */
const EXPORTED_CRL_MODE = 0o644;

export interface CrlInspection {
  readonly pem: string;
  readonly summary: CrlSummary;
  /** Revoked in the store but not yet listed in the CRL file. */
  readonly unpublishedSerials: readonly string[];
  /** Behind the store, or past the point where revocation.ts reissues it. */
  readonly needsReissue: boolean;
}

export const crlCommand = defineCommand({
  words: ['crl'],
  summary: 'export the certificate revocation list',
  usage: `Usage: dmz-pki --state DIR crl [--der] [--out FILE]

Prints the current CRL (PEM). When it is due for reissue or does not yet list every revoked
certificate, it is reissued first if the CA key can be unlocked; otherwise the file on disk
is exported as it is, with a warning.

Options:
  --der                DER instead of PEM
  --out FILE           write to FILE instead of stdout
${PASSPHRASE_HELP}
  --json               print {pem, thisUpdate, nextUpdate, revokedSerials}`,
  options: {
    der: { type: 'boolean' },
    out: { type: 'string' },
    ...PASSPHRASE_OPTIONS,
  },
  operands: [],
  async run({ values, stateDir, env, output }) {
    if (values.der === true && values.json === true) throw usageError('--der and --json cannot be combined');
    const passphrase = await readPassphrase(values['passphrase-file'], env);
    // Audited as a reissue; an export of the CRL as it is changes nothing and is not recorded.
    const pem = await withAuditedState(stateDir, 'crl', async (state, audit) => {
      const current = await inspectCrl(state);
      if (!current.needsReissue) return current.pem;
      const ca = await loadCertificateAuthorityIfUnlocked(state, passphrase);
      const { writeCrl } = await import('../revocation.ts');
      if (ca === undefined) {
        warnStale(output, current);
        return current.pem;
      }
      // Recorded before the file is replaced: no CRL reissued that nobody knows of, even after a kill.
      const reissued = await writeCrl({
        stateDir: state.stateDir,
        store: state.store,
        ca,
        record: (crl) =>
          audit.commitBefore(
            () => ({
              crlNumber: crl.crlNumber,
              nextUpdate: crl.nextUpdate.toISOString(),
              revokedSerials: crl.revoked,
            }),
            'the CRL was not replaced',
          ),
      });
      return reissued.pem;
    });
    const { crlPemToDer, readCrlSummary } = await import('../crl-reader.ts');
    const data =
      values.json === true
        ? describeCrl(readCrlSummary(pem), pem)
        : values.der === true
          ? crlPemToDer(pem)
          : pem;
    if (values.out === undefined) output.stdout(data);
    else await writeExport(values.out, data);
  },
});

async function writeExport(path: string, data: string | Uint8Array): Promise<void> {
  try {
    await writeFile(path, data, { mode: EXPORTED_CRL_MODE });
  } catch (cause) {
    throw fileError('write the CRL to', path, cause, {
      ENOENT: 'create its directory first, or choose another --out',
      EISDIR: '--out takes a file name, not a directory',
      EACCES: 'choose an --out this user may write, or fix its permissions',
      EPERM: 'choose an --out this user may write, or fix its permissions',
      ENOSPC: 'free space on the device, or choose an --out on another one',
    });
  }
}

export async function inspectCrl(state: PkiState, now = new Date()): Promise<CrlInspection> {
  const [{ readCrlSummary }, revocation] = await Promise.all([
    import('../crl-reader.ts'),
    import('../revocation.ts'),
  ]);
  const pem = await readState(state.stateDir, 'crl');
  const summary = readCrlSummary(pem);
  const unpublishedSerials = revocation.unpublishedSerials(state.store, pem);
  const needsReissue = unpublishedSerials.length > 0 || revocation.crlNeedsReissue(state.store, now);
  return { pem, summary, unpublishedSerials, needsReissue };
}

/** Said whenever a stale CRL is kept because the CA key is encrypted and no passphrase was given. */
export function warnStale(output: Output, crl: CrlInspection, now = new Date()): void {
  const unlock = `give the passphrase (--passphrase-file FILE or ${PASSPHRASE_ENV}) to reissue it now`;
  const { unpublishedSerials, summary } = crl;
  if (unpublishedSerials.length > 0) {
    printNote(
      output,
      `the CRL file does not list ${unpublishedSerials.length} revoked certificate(s) yet; ` +
        `the running relay publishes them (it watches the store), or ${unlock}`,
    );
  } else if (summary.nextUpdate <= now) {
    printNote(
      output,
      `the CRL expired at ${formatTime(summary.nextUpdate)}: TLS peers refuse every agent until it is reissued; ${unlock}`,
    );
  } else {
    printNote(
      output,
      `the CRL is due for reissue (next update ${formatTime(summary.nextUpdate)}); ${unlock}`,
    );
  }
}

function describeCrl(summary: CrlSummary, pem: string): string {
  const { thisUpdate, nextUpdate, revokedSerials } = summary;
  return formatJson({ pem, thisUpdate, nextUpdate, revokedSerials });
}
