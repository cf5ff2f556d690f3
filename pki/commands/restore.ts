/**
 * `dmz-pki restore --in FILE`: a backup brought back into an empty state directory on a new
 * appliance (pki/restore.ts). Refused, with nothing written, for a directory that is not empty,
 * a wrong passphrase, or a file truncated or altered.
 */
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileError, quote } from '../../relay/protocol/command-line.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { defineCommand, recordRefusalOverState, requireOption } from './command.ts';
import { formatTime, printFields, printJson, printNote } from './output.ts';
import { BACKUP_PASSPHRASE_HELP, BACKUP_PASSPHRASE_OPTIONS, readBackupPassphrase } from './passphrase.ts';

export const restoreCommand = defineCommand({
  words: ['restore'],
  summary: 'restore a backup into an empty state directory',
  usage: `Usage: dmz-pki --state DIR restore --in FILE [--config FILE] [options]

Restores a backup made by 'dmz-pki backup' into DIR, which must not exist or be empty. The
whole file is authenticated before anything is written; files are created 0600 in a 0700
directory. Enrollment tokens outstanding in the backup are revoked (any may have been used
since). A relay started on DIR accepts the agents the old one did and refuses the revoked ones;
it needs the CA key's passphrase, if the key is encrypted, as before. Revocations made after the
backup are not in it: revoke those agents again. A certificate issued after it (an agent
enrolled or renewed since) is unknown to the restored CA, which could not revoke it: the relay
refuses it, and that agent enrolls again.

Options:
  --in FILE            the backup file (required)
  --config FILE        where to write the relay's configuration from the backup, if it holds
                       one (a new file; default: relay.yaml in DIR)
${BACKUP_PASSPHRASE_HELP}`,
  options: {
    in: { type: 'string' },
    config: { type: 'string' },
    ...BACKUP_PASSPHRASE_OPTIONS,
  },
  operands: [],
  async run({ values, stateDir, env, output }) {
    const path = requireOption(values.in, '--in');
    const { MAX_BACKUP_BYTES, refuseNonEmptyTarget, restoreBackup } = await import('../restore.ts');
    // Cheap refusals first: the key derivation costs a third of a second and 128 MiB.
    await refuseNonEmptyTarget(stateDir, values.config).catch(async (error: unknown) => {
      // A CA there keeps a record that someone tried to restore over it.
      if (error instanceof DmzError && error.code === 'PKI_ERR_RESTORE_NOT_EMPTY') {
        await recordRefusalOverState(stateDir, 'restore', error);
      }
      throw error;
    });
    const passphrase = await readBackupPassphrase(values['backup-passphrase-file'], env);
    const file = await readBackupFile(path, MAX_BACKUP_BYTES);
    const summary = await restoreBackup({
      file,
      passphrase,
      stateDir,
      source: resolve(path),
      ...(values.config === undefined ? {} : { configPath: values.config }),
    });
    // What a snapshot cannot hold, said where the operator acts on it (SECURITY.md, Backups).
    printNote(
      output,
      `the backup was taken at ${formatTime(summary.backupCreatedAt)}: revoke again every agent revoked since ` +
        '(dmz-pki revoke NAME); certificates issued since are refused by the relay (enroll those agents again)',
    );
    if (summary.configStateDir !== undefined && summary.configStateDir !== summary.stateDir) {
      printNote(
        output,
        `the restored configuration names the state directory ${quote(summary.configStateDir)}, not ` +
          `${quote(summary.stateDir)}: set "state" in ${quote(summary.configPath ?? '')} before the relay starts`,
      );
    }
    if (summary.tokensRevoked > 0) {
      printNote(output, `revoked ${summary.tokensRevoked} enrollment token(s) outstanding in the backup`);
    }
    if (values.json === true) {
      printJson(output, summary);
      return;
    }
    printFields(output, [
      ['state directory', summary.stateDir],
      ['trust domain', summary.trustDomain],
      ['CA fingerprint', summary.caFingerprint],
      ['backup taken at', formatTime(summary.backupCreatedAt)],
      ['relay config', summary.configPath ?? '(none in the backup)'],
    ]);
  },
});

async function readBackupFile(path: string, maxBytes: number): Promise<Buffer> {
  try {
    if ((await stat(path)).size > maxBytes) {
      throw new DmzError('PKI_ERR_BACKUP_DAMAGED', 'the file is larger than any backup this program writes');
    }
    return await readFile(path);
  } catch (cause) {
    if (cause instanceof DmzError) throw cause;
    throw fileError('read the backup', path, cause);
  }
}
