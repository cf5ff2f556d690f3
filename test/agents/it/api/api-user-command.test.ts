/**
 * `dmz-agent api user add`: the credential files it makes (0600, a hash that verifies the
 * password and no other, a token long enough), the entry it prints, and its refusals with the
 * exit statuses and codes every command of the product uses.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parsePasswordHash, verifyPassword } from '../../../../agents/it/api/password-hash.ts';
import { runAgentCommand } from './api-plant.ts';

describe('dmz-agent api user add', () => {
  let dir: string;
  let passwordFile: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-api-user-'));
    passwordFile = join(dir, 'typed');
    await writeFile(passwordFile, 'correct horse battery\n', { mode: 0o600 });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('writes a scrypt hash 0600 (in a new 0700 directory) that verifies the password alone, and prints the entry', async () => {
    const hashFile = join(dir, 'users', 'ada.scrypt');
    const made = await runAgentCommand([
      'api',
      'user',
      'add',
      'ada',
      '--role',
      'write',
      '--password-hash-file',
      hashFile,
      '--password-file',
      passwordFile,
    ]);
    assert.equal(made.status, 0, made.stderr);
    assert.equal(
      made.stdout,
      `made the password hash in ${hashFile}\n` +
        'add to it.api.users in agent.yaml, then reload the agent (systemctl reload, or SIGHUP):\n' +
        '  - name: ada\n' +
        '    role: write\n' +
        `    passwordHashFile: ${hashFile}\n`,
    );
    assert.equal((await stat(hashFile)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'users'))).mode & 0o777, 0o700);
    const text = await readFile(hashFile, 'utf8');
    assert.match(text, /^\$scrypt\$ln=15,r=8,p=3\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}\n$/);
    assert.doesNotMatch(text, /correct horse/);
    const hash = parsePasswordHash(text.trim());
    assert.ok(typeof hash !== 'string');
    assert.equal(await verifyPassword(hash, 'correct horse battery'), true);
    assert.equal(await verifyPassword(hash, 'correct horse batterz'), false);
  });

  it('makes a token file 0600 and prints the entry as JSON; --force replaces a file, without it is refused', async () => {
    const tokenFile = join(dir, 'scada.token');
    const argv = ['api', 'user', 'add', 'scada', '--role', 'read', '--token-file', tokenFile, '--json'];
    const made = await runAgentCommand(argv);
    assert.equal(made.status, 0, made.stderr);
    assert.deepEqual(JSON.parse(made.stdout), { name: 'scada', role: 'read', tokenFile });
    const token = await readFile(tokenFile, 'utf8');
    assert.match(token, /^[0-9a-f]{64}\n$/);
    assert.equal((await stat(tokenFile)).mode & 0o777, 0o600);

    const again = await runAgentCommand(argv);
    assert.equal(again.status, 1);
    assert.match(
      again.stderr,
      /cannot write ".*scada\.token": it already exists \(CLI_ERR_FILE\); give --force/,
    );
    assert.equal(await readFile(tokenFile, 'utf8'), token);

    assert.equal((await runAgentCommand([...argv, '--force'])).status, 0);
    assert.notEqual(await readFile(tokenFile, 'utf8'), token);
    assert.equal((await stat(tokenFile)).mode & 0o777, 0o600);
  });

  const refusals = [
    {
      what: 'no role',
      argv: ['ada', '--token-file', 'x'],
      status: 2,
      error: /--role read\|write is required \(CLI_ERR_USAGE\)/,
    },
    {
      what: 'an unknown role',
      argv: ['ada', '--role', 'admin', '--token-file', 'x'],
      status: 2,
      error: /--role "admin" must be read or write \(CLI_ERR_INVALID_ARGUMENT\)/,
    },
    {
      what: 'a name with a colon',
      argv: ['ada:x', '--role', 'read', '--token-file', 'x'],
      status: 2,
      error: /user name "ada:x" must be/,
    },
    {
      what: 'no credential to make',
      argv: ['ada', '--role', 'read'],
      status: 2,
      error: /give --password-hash-file FILE, --token-file FILE or both/,
    },
    {
      what: 'no name',
      argv: ['--role', 'read', '--token-file', 'x'],
      status: 2,
      error: /the user NAME is required/,
    },
    {
      what: 'a password file without a hash file',
      argv: ['ada', '--role', 'read', '--token-file', 'x', '--password-file', 'p'],
      status: 2,
      error: /--password-file is for --password-hash-file/,
    },
    {
      what: 'an unknown option',
      argv: ['ada', '--role', 'read', '--password', 'x'],
      status: 2,
      error: /unknown option/,
    },
  ];
  for (const refusal of refusals) {
    it(`refuses ${refusal.what} (exit ${refusal.status}) and writes nothing`, async () => {
      const made = await runAgentCommand(['api', 'user', 'add', ...refusal.argv]);
      assert.equal(made.status, refusal.status);
      assert.match(made.stderr, refusal.error);
      assert.equal(made.stdout, '');
      await assert.rejects(stat('x'), { code: 'ENOENT' });
    });
  }

  it('refuses a password shorter than 8 characters, and writes no hash', async () => {
    const short = join(dir, 'short');
    await writeFile(short, 'abc\n', { mode: 0o600 });
    const hashFile = join(dir, 'short.scrypt');
    const made = await runAgentCommand([
      'api',
      'user',
      'add',
      'ben',
      '--role',
      'read',
      '--password-hash-file',
      hashFile,
      '--password-file',
      short,
    ]);
    assert.equal(made.status, 2);
    assert.match(made.stderr, /the password has fewer than 8 characters \(CLI_ERR_INVALID_ARGUMENT\)/);
    await assert.rejects(stat(hashFile), { code: 'ENOENT' });
  });

  it('has help, and refuses an unknown action', async () => {
    const help = await runAgentCommand(['api', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Usage: dmz-agent api user add NAME --role read\|write/);
    const unknown = await runAgentCommand(['api', 'user', 'remove', 'ada']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown api action "user remove ada"/);
  });
});
