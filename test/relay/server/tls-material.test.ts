/**
 * The relay's TLS material (relay/server/tls.ts) as the relay's user reads it: a state file it
 * may not read (written by `dmz-pki` run as root: root's, 0600) is told as unreadable, by whom
 * and owned by whom, not as missing. Root reads every file, so the loader runs in a child
 * process as nobody, over a state directory nobody owns.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createCaState } from '../../support/ca-state.ts';

const TLS_MODULE = fileURLToPath(new URL('../../../relay/server/tls.ts', import.meta.url));
const NOBODY = { uid: 65534, gid: 65534 } as const;

/** loadTlsMaterial(stateDir) in a process of `user`: what it threw, as JSON. */
function loadAs(user: typeof NOBODY, stateDir: string): Promise<{ code?: string; message?: string }> {
  const script = `import { loadTlsMaterial } from ${JSON.stringify(TLS_MODULE)};
    try { await loadTlsMaterial(${JSON.stringify(stateDir)}); console.log('{}'); }
    catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message })); }`;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '--eval', script],
      { ...user, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error !== null) reject(new Error(`the loader did not run: ${stderr}`, { cause: error }));
        else resolve(JSON.parse(stdout) as { code?: string; message?: string });
      },
    );
  });
}

describe('relay TLS material - a state file the relay may not read', () => {
  let root: string | undefined;
  after(async () => {
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it(
    'names the file, the uid that cannot read it and its owner, instead of saying it is missing',
    { skip: process.getuid?.() !== 0 && 'only root can give a file to another user' },
    async () => {
      root = await mkdtemp(join(tmpdir(), 'dmz-tls-material-'));
      // nobody passes through the scratch directory, as the relay's user through /var/lib.
      chmodSync(root, 0o711);
      const stateDir = join(root, 'state');
      await createCaState(stateDir);
      for (const file of ['.', ...readdirSync(stateDir)])
        chownSync(join(stateDir, file), NOBODY.uid, NOBODY.gid);
      assert.deepEqual(await loadAs(NOBODY, stateDir), {}, "nobody's own state loads");
      // What `dmz-pki relay-cert` run as root left behind.
      chownSync(join(stateDir, 'relay.pem'), 0, 0);
      assert.deepEqual(await loadAs(NOBODY, stateDir), {
        code: 'PKI_ERR_STATE_OWNER',
        message: `${JSON.stringify(join(stateDir, 'relay.pem'))} is not readable by uid 65534 (owned by uid 0 (root))`,
      });
    },
  );
});
