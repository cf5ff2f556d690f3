/**
 * `npm run demo` is the first thing a newcomer runs: it must keep working end to end. The real
 * commands as processes, the Modbus PLC, the dashboard's API answering with the PLC's values, and
 * the revocation finale; it stops by itself and leaves nothing running.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { freePort } from '../support/ports.ts';

const execFileAsync = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

describe('deploy - demo', () => {
  it('sets up a CA, enrolls two agents, runs them with a Modbus PLC and the dashboard, and cuts a revoked agent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dmz-demo-'));
    const demoDir = join(dir, 'demo');
    const port = await freePort();
    try {
      const { stdout } = await execFileAsync(
        process.execPath,
        [
          '--import',
          'tsx',
          join(ROOT, 'deploy', 'demo.ts'),
          '--seconds',
          '30',
          '--revoke-after',
          '15',
          '--dir',
          demoDir,
          '--port',
          String(port),
        ],
        { cwd: ROOT, encoding: 'utf8', timeout: 150_000 },
      );
      assert.match(stdout, /CA fingerprint: sha256:[0-9a-f]{64}/);
      assert.match(stdout, /enrolled spiffe:\/\/demo\.plant\/agent\/ot\/press-7/);
      assert.match(stdout, /enrolled spiffe:\/\/demo\.plant\/agent\/it\/historian/);
      assert.match(stdout, new RegExp(`dashboard: http://127\\.0\\.0\\.1:${port}/`));
      // The dashboard's user: a write needs a named user of role write, and the demo makes one.
      assert.match(stdout, /sign in: +operator, password [A-Za-z0-9_-]{16} /);
      // Values read from the PLC over Modbus, through the relay, out of the historian's API.
      assert.match(stdout, /historian <- .*temperature 1\d\d(\.\d)? degC \(good\)/);
      assert.match(stdout, /vibration \S+ mm\/s \(bad: Modbus exception 2\)/);
      assert.match(stdout, /historian disconnected \d+ ms after the revoke command/);
      assert.match(stdout, /== done\./);
      // The configs it wrote are the ones the README points to: they hold what ran.
      const it_ = parse(await readFile(join(demoDir, 'it.yaml'), 'utf8')) as {
        it: { api: { listen: { port: number }; users: { name: string; role: string }[] } };
      };
      assert.equal(it_.it.api.listen.port, port);
      assert.deepEqual(
        it_.it.api.users.map(({ name, role }) => ({ name, role })),
        [{ name: 'operator', role: 'write' }],
      );
      const files = (await readdir(join(demoDir, 'points'))).filter((name) => name.endsWith('.jsonl'));
      const lines = await Promise.all(files.map((name) => readFile(join(demoDir, 'points', name), 'utf8')));
      assert.match(
        lines.join(''),
        /"topic":"press-7\/plc\/temperature"/,
        'the JSON Lines sink holds PLC points',
      );
      const left = spawnSync('pgrep', ['-f', demoDir], { encoding: 'utf8' });
      assert.equal(left.stdout.trim(), '', `still running: ${left.stdout}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
