/** `npm run demo` is the first thing a newcomer runs: it must keep working end to end. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

describe('deploy - demo', () => {
  it('sets up a CA, enrolls two agents, moves data and a setpoint, and cuts a revoked agent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dmz-demo-'));
    try {
      const { stdout } = await execFileAsync(
        process.execPath,
        ['--import', 'tsx', join(ROOT, 'deploy', 'demo.ts'), '--seconds', '6', '--dir', join(dir, 'demo')],
        { cwd: ROOT, encoding: 'utf8', timeout: 90_000 },
      );
      assert.match(stdout, /CA fingerprint: sha256:[0-9a-f]{64}/);
      assert.match(stdout, /enrolled spiffe:\/\/demo\.plant\/agent\/ot\/press-7/);
      assert.match(stdout, /enrolled spiffe:\/\/demo\.plant\/agent\/it\/historian/);
      assert.match(stdout, /historian <- press-7\/speed = [\d.]+ \(seq \d+/);
      assert.match(stdout, /setpoints\/speed = 70: speed set to 70/);
      const cut = /historian connection closed (\d+) ms after/.exec(stdout);
      assert.ok(cut?.[1] !== undefined, stdout);
      // This figure includes starting the `dmz-pki revoke` process, which a loaded machine slows
      // down; the one-second guarantee itself is asserted in test/pki/lifecycle.test.ts.
      assert.ok(Number(cut[1]) < 10_000, `cut after ${cut[1]} ms`);
      assert.match(stdout, /historian reconnect refused/);
      assert.doesNotMatch(stdout, /UNEXPECTED/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
