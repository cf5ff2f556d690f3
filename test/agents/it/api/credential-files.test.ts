/**
 * Credential files swapped for something else (auth.ts loadAuthenticator, as the start and a
 * SIGHUP's reload read them): a FIFO, a device, a huge file, symbolic links. Each refusal is
 * AGENT_ERR_API_SECRET naming the key path, and comes at once: a FIFO read would wait for a
 * writer for ever, and the agent's start (or its reload) with it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ItApiUser } from '../../../../agents/it/api/api-config.ts';
import { loadAuthenticator } from '../../../../agents/it/api/auth.ts';
import { DmzError } from '../../../../relay/protocol/errors.ts';

const TOKEN = 'f00dfeed'.repeat(8);
const KEY = 'it.api.users[0].tokenFile';
/** Far longer than any refusal takes; a read that blocks never ends before it. */
const BOUND_MS = 20_000;

function tokenUser(file: string): ItApiUser {
  return { name: 'scada', role: 'read', token: { file, key: KEY }, password: undefined };
}

/** loadAuthenticator's outcome, or 'hung' if it has none within BOUND_MS. */
async function outcome(file: string): Promise<'loaded' | 'hung' | DmzError> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(resolve, BOUND_MS, 'hung')));
  try {
    return await Promise.race([
      loadAuthenticator([tokenUser(file)]).then(
        () => 'loaded' as const,
        (error: unknown) => {
          if (error instanceof DmzError) return error;
          throw error;
        },
      ),
      hung,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('agents/it/api - credential files swapped for something else', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-credential-files-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const refused: {
    what: string;
    make(path: string): Promise<void>;
    message: RegExp;
  }[] = [
    {
      what: 'a FIFO',
      make: (path) => {
        execFileSync('mkfifo', ['-m', '600', path]);
        return Promise.resolve();
      },
      message: /is not a regular file/,
    },
    {
      what: 'a symbolic link to /dev/zero',
      make: (path) => symlink('/dev/zero', path),
      message: /is not a regular file/,
    },
    {
      what: 'a sparse file of 1 GiB',
      make: async (path) => {
        const handle = await open(path, 'w', 0o600);
        await handle.truncate(2 ** 30);
        await handle.close();
      },
      message: /holds more than 4096 bytes/,
    },
    {
      what: 'a symbolic link to a file others can read',
      make: async (path) => {
        await writeFile(`${path}.target`, `${TOKEN}\n`, { mode: 0o644 });
        await symlink(`${path}.target`, path);
      },
      message: /is open to group or others/,
    },
  ];
  for (const [index, bad] of refused.entries()) {
    it(`refuses ${bad.what} at once: AGENT_ERR_API_SECRET naming ${KEY}`, async () => {
      const path = join(dir, `bad-${index}`);
      await bad.make(path);
      const result = await outcome(path);
      assert.ok(result instanceof DmzError, `got ${String(result)}`);
      assert.equal(result.code, 'AGENT_ERR_API_SECRET');
      assert.ok(result.message.startsWith(`${KEY}: `), result.message);
      assert.match(result.message, bad.message);
    });
  }

  it('follows a symbolic link to a private file (a Kubernetes secret volume is made of them)', async () => {
    const target = join(dir, 'secret-target');
    await writeFile(target, `${TOKEN}\n`, { mode: 0o600 });
    await symlink(target, join(dir, 'secret-link'));
    assert.equal(await outcome(join(dir, 'secret-link')), 'loaded');
  });
});
