/**
 * `dmz-pki backup --out FILE`: the whole CA state and the relay's configuration in one encrypted
 * file, taken while the relay runs (pki/backup.ts). It needs no CA key passphrase: the keys go
 * into the backup as they are on disk, encrypted or not, inside the backup's own encryption.
 */
import { resolve } from 'node:path';
import { defineCommand, requireOption, withAuditedState } from './command.ts';
import { formatTime, printFields, printJson } from './output.ts';
import { BACKUP_PASSPHRASE_HELP, BACKUP_PASSPHRASE_OPTIONS, readBackupPassphrase } from './passphrase.ts';

export const backupCommand = defineCommand({
  words: ['backup'],
  summary: 'write an encrypted backup of the whole state, while the relay runs',
  usage: `Usage: dmz-pki --state DIR backup --out FILE [--config relay.yaml] [options]

Writes one consistent copy of the CA state (the store, taken with SQLite's online backup; the
CA and relay keys and certificates; the CRL; the session ticket salt) and, with --config, the
relay's configuration, encrypted under a passphrase (scrypt, AES-256-GCM). The relay may run
meanwhile. FILE is created 0600 and never overwritten. Keep the passphrase apart from the
backup: 20 characters at least, generated (openssl rand -base64 32).

Options:
  --out FILE           the backup file to create (required)
  --config FILE        the relay's configuration, to include (checked to name this DIR)
${BACKUP_PASSPHRASE_HELP}`,
  options: {
    out: { type: 'string' },
    config: { type: 'string' },
    ...BACKUP_PASSPHRASE_OPTIONS,
  },
  operands: [],
  async run({ values, stateDir, env, output }) {
    const out = requireOption(values.out, '--out');
    const passphrase = await readBackupPassphrase(values['backup-passphrase-file'], env);
    const { createBackup } = await import('../backup.ts');
    const summary = await withAuditedState(stateDir, 'backup', async (state, audit) => {
      audit.about({
        file: resolve(out),
        ...(values.config === undefined ? {} : { config: resolve(values.config) }),
      });
      // Recorded before its file is written: no backup nobody knows of, even after a kill.
      return createBackup({
        state,
        passphrase,
        out,
        ...(values.config === undefined ? {} : { configPath: values.config }),
        record: (made) =>
          audit.commitBefore(
            () => ({ bytes: made.bytes, files: made.files, createdAt: made.createdAt.toISOString() }),
            'no backup was written',
          ),
      });
    });
    if (values.json === true) {
      printJson(output, { file: resolve(out), ...summary });
      return;
    }
    printFields(output, [
      ['backup', resolve(out)],
      ['bytes', String(summary.bytes)],
      ['taken at', formatTime(summary.createdAt)],
      ['CA fingerprint', summary.caFingerprint],
      ['files', summary.files.join(' ')],
    ]);
  },
});
