/**
 * The agent port's session ticket keys in memory and in the state directory: derived from the CA
 * key, a salt that survives restarts and the revoked set; new at every rotation and past their
 * maximum age; a damaged file replaced with a warning that names it.
 */
import assert from 'node:assert/strict';
import { asidePath } from '../../../relay/protocol/durable-files.ts';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino, type Logger } from 'pino';
import {
  SessionTicketKeys,
  type OpenTicketKeysOptions,
  TICKET_KEY_FILE,
  TICKET_KEYS_MAX_AGE_MS,
} from '../../../relay/server/session-tickets.ts';
import { expectNever, waitFor } from '../../support/wait.ts';

const NONE = new Set<string>();

/** Opened and saved, as a relay does once it is up. */
async function openSaved(options: OpenTicketKeysOptions): Promise<SessionTicketKeys> {
  const keys = await SessionTicketKeys.open(options);
  await keys.save();
  return keys;
}

function newCaKeyPem(): string {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
}

/** A logger whose warnings and errors are kept, as their messages. */
function recordingLog(): { log: Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n'))
        if (line !== '') lines.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  return { log: pino({ level: 'warn' }, stream), lines };
}

describe('relay/server/session-tickets', () => {
  let root: string;
  let caKeyPem: string;
  let dirs = 0;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'dmz-session-tickets-'));
    caKeyPem = newCaKeyPem();
  });
  after(() => rm(root, { recursive: true, force: true }));

  async function stateDir(): Promise<string> {
    const dir = join(root, `state-${++dirs}`);
    await mkdir(dir, { mode: 0o700 });
    return dir;
  }

  it('tickets - the first start writes a 0600 file; the next start derives the same keys from it', async () => {
    const dir = await stateDir();
    const { log, lines } = recordingLog();
    const first = await SessionTicketKeys.open({ stateDir: dir, caKeyPem, revokedSerials: NONE, log });
    const file = join(dir, TICKET_KEY_FILE);
    await assert.rejects(stat(file), { code: 'ENOENT' }, 'written before the relay is up');
    await first.save();
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const stored = await readFile(file, 'utf8');
    // The file holds a salt, never the keys.
    assert.ok(!stored.includes(first.keys.toString('base64')));
    assert.equal(first.keys.length, 48);
    const second = await openSaved({ stateDir: dir, caKeyPem, revokedSerials: NONE, log });
    assert.deepEqual(second.keys, first.keys);
    assert.equal(await readFile(file, 'utf8'), stored, 'a fresh file is not rewritten at start');
    assert.deepEqual(lines, []);
  });

  it('tickets - the same file under another CA key, or another revoked set, gives other keys', async () => {
    const dir = await stateDir();
    const { log } = recordingLog();
    const open = (key: string, revokedSerials: ReadonlySet<string>) =>
      openSaved({ stateDir: dir, caKeyPem: key, revokedSerials, log });
    const base = (await open(caKeyPem, NONE)).keys;
    assert.notDeepEqual((await open(newCaKeyPem(), NONE)).keys, base);
    // A revocation recorded while the relay was down changes the keys at its next start.
    assert.notDeepEqual((await open(caKeyPem, new Set(['1f']))).keys, base);
    assert.deepEqual((await open(caKeyPem, NONE)).keys, base);
  });

  it('tickets - a rotation brings new keys at once and rewrites the file (0600) with them', async () => {
    const dir = await stateDir();
    const { log } = recordingLog();
    const file = join(dir, TICKET_KEY_FILE);
    const keys = await openSaved({ stateDir: dir, caKeyPem, revokedSerials: NONE, log });
    const before = keys.keys;
    const storedBefore = await readFile(file, 'utf8');
    const revoked = new Set(['2a']);
    const rotated = keys.rotate(revoked);
    assert.notDeepEqual(rotated, before);
    assert.deepEqual(keys.keys, rotated);
    await keys.flushed();
    assert.notEqual(await readFile(file, 'utf8'), storedBefore);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    // What a restart after the rotation derives: the rotated keys.
    const restarted = await openSaved({ stateDir: dir, caKeyPem, revokedSerials: revoked, log });
    assert.deepEqual(restarted.keys, rotated);
    await keys.close();
  });

  it('tickets - keys older than the maximum age are replaced at start', async () => {
    const dir = await stateDir();
    const { log } = recordingLog();
    const createdAt = Date.now();
    const old = await openSaved({
      stateDir: dir,
      caKeyPem,
      revokedSerials: NONE,
      log,
      now: () => createdAt,
    });
    const justYoung = await openSaved({
      stateDir: dir,
      caKeyPem,
      revokedSerials: NONE,
      log,
      now: () => createdAt + TICKET_KEYS_MAX_AGE_MS - 1,
    });
    assert.deepEqual(justYoung.keys, old.keys);
    const aged = await openSaved({
      stateDir: dir,
      caKeyPem,
      revokedSerials: NONE,
      log,
      now: () => createdAt + TICKET_KEYS_MAX_AGE_MS,
    });
    assert.notDeepEqual(aged.keys, old.keys);
  });

  it('tickets - keys reaching the maximum age while the relay runs are rotated and handed over', async () => {
    const dir = await stateDir();
    const { log } = recordingLog();
    const createdAt = Date.now();
    // The clock says the keys are 100 ms from their maximum age.
    let clock = createdAt;
    const keys = await openSaved({
      stateDir: dir,
      caKeyPem,
      revokedSerials: NONE,
      log,
      now: () => clock,
    });
    const first = keys.keys;
    clock = createdAt + TICKET_KEYS_MAX_AGE_MS - 100;
    const applied: Buffer[] = [];
    keys.rotateByAge(NONE, (rotated) => applied.push(rotated));
    await waitFor(() => applied.length > 0, 'the rotation by age', 2_000);
    assert.notDeepEqual(applied[0], first);
    assert.deepEqual(keys.keys, applied[0]);
    await keys.close();
  });

  it('tickets - a rotation for another reason starts the age over', async () => {
    const dir = await stateDir();
    const { log } = recordingLog();
    const createdAt = Date.now();
    let clock = createdAt;
    const keys = await openSaved({ stateDir: dir, caKeyPem, revokedSerials: NONE, log, now: () => clock });
    clock = createdAt + TICKET_KEYS_MAX_AGE_MS - 100;
    const applied: Buffer[] = [];
    keys.rotateByAge(NONE, (rotated) => applied.push(rotated));
    keys.rotate(new Set(['3b']));
    await expectNever(() => applied.length > 0, 'a rotation by age right after a rotation', 500);
    await keys.close();
  });

  const DAMAGED: readonly { name: string; contents: string; mode?: number }[] = [
    { name: 'not JSON', contents: 'garbage{' },
    {
      name: 'another version',
      contents: JSON.stringify({ version: 2, salt: 'AA==', createdAt: new Date().toISOString() }),
    },
    {
      name: 'a short salt',
      contents: JSON.stringify({ version: 1, salt: 'AAAA', createdAt: new Date().toISOString() }),
    },
    {
      name: 'an extra field',
      contents: JSON.stringify({
        version: 1,
        salt: Buffer.alloc(32, 1).toString('base64'),
        createdAt: new Date().toISOString(),
        keys: 'x',
      }),
    },
    {
      name: 'a birth in the future (rotation by age dodged)',
      contents: JSON.stringify({
        version: 1,
        salt: Buffer.alloc(32, 1).toString('base64'),
        createdAt: new Date(Date.now() + 365 * 24 * 3600 * 1000).toISOString(),
      }),
    },
    {
      name: 'open to other users',
      contents: JSON.stringify({
        version: 1,
        salt: Buffer.alloc(32, 1).toString('base64'),
        createdAt: new Date().toISOString(),
      }),
      mode: 0o644,
    },
  ];
  for (const row of DAMAGED) {
    it(`tickets - a file with ${row.name} is replaced with new keys, with a warning naming its path`, async () => {
      const dir = await stateDir();
      const file = join(dir, TICKET_KEY_FILE);
      await writeFile(file, row.contents, { mode: 0o600 });
      if (row.mode !== undefined) await chmod(file, row.mode);
      const { log, lines } = recordingLog();
      const keys = await openSaved({ stateDir: dir, caKeyPem, revokedSerials: NONE, log });
      assert.equal(keys.keys.length, 48);
      assert.equal(lines.length, 1, JSON.stringify(lines));
      assert.ok(lines[0]!.msg.includes(JSON.stringify(file)), lines[0]!.msg);
      assert.notEqual(await readFile(file, 'utf8'), row.contents);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      // Replaced by a good file: the next start takes it without a word.
      const again = recordingLog();
      const next = await openSaved({ stateDir: dir, caKeyPem, revokedSerials: NONE, log: again.log });
      assert.deepEqual(next.keys, keys.keys);
      assert.deepEqual(again.lines, []);
    });
  }

  it('tickets - a key file that cannot be read (a directory in its place) is an error naming it', async () => {
    const dir = await stateDir();
    const file = join(dir, TICKET_KEY_FILE);
    await mkdir(file);
    const { log } = recordingLog();
    await assert.rejects(
      SessionTicketKeys.open({ stateDir: dir, caKeyPem, revokedSerials: NONE, log }),
      (error: Error & { code?: string }) =>
        error.code === 'CLI_ERR_FILE' && error.message.includes(JSON.stringify(file)),
    );
  });

  it('tickets - a key file that cannot be written is an error naming the file', async () => {
    const dir = await stateDir();
    // A directory where the crash-safe write puts its temporary file: unwritable even for root.
    await mkdir(asidePath(join(dir, TICKET_KEY_FILE)));
    const { log } = recordingLog();
    await assert.rejects(
      openSaved({ stateDir: dir, caKeyPem, revokedSerials: NONE, log }),
      (error: Error & { code?: string }) =>
        error.code === 'CLI_ERR_FILE' && error.message.includes(JSON.stringify(join(dir, TICKET_KEY_FILE))),
    );
  });
});
