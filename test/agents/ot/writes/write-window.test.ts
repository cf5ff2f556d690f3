import assert from 'node:assert/strict';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  checkWindowUser,
  closeWindow,
  openWindow,
  readWindow,
  WINDOW_FILE,
  writesDir,
} from '../../../../agents/ot/writes/write-window.ts';

const HOUR = 3600 * 1000;
const NOW = Date.parse('2026-12-01T12:00:00Z');

describe('the local write window', () => {
  let state: string;
  before(async () => {
    state = await mkdtemp(join(tmpdir(), 'dmz-window-'));
  });
  after(() => rm(state, { recursive: true, force: true }));

  it('is closed until opened, open for its duration, closed after it and after close', async () => {
    assert.deepEqual(await readWindow(state, 8 * HOUR, NOW), { open: false, reason: 'not opened' });
    const window = await openWindow(state, 15 * 60_000, 8 * HOUR, NOW);
    assert.equal(window.until, NOW + 15 * 60_000);
    assert.equal((await readWindow(state, 8 * HOUR, NOW + 15 * 60_000 - 1)).open, true);
    assert.equal((await readWindow(state, 8 * HOUR, NOW + 15 * 60_000)).open, false);
    assert.equal(await closeWindow(state, 8 * HOUR, NOW), true);
    assert.equal((await readWindow(state, 8 * HOUR, NOW)).open, false);
    assert.equal(await closeWindow(state, 8 * HOUR, NOW), false);
  });

  it('opens for at least a minute and at most the configured maximum', async () => {
    for (const durationMs of [59_000, 8 * HOUR + 1]) {
      await assert.rejects(openWindow(state, durationMs, 8 * HOUR, NOW), { code: 'AGENT_ERR_WRITE_WINDOW' });
    }
    assert.equal((await readWindow(state, 8 * HOUR, NOW)).open, false);
  });

  it('is closed when its file is open to others or damaged, whatever it says', async () => {
    await openWindow(state, HOUR, 8 * HOUR, NOW);
    const path = join(writesDir(state), WINDOW_FILE);
    await chmod(path, 0o644);
    const loose = await readWindow(state, 8 * HOUR, NOW);
    assert.equal(loose.open, false);
    assert.match(loose.open ? '' : loose.reason, /not trusted/);
    await chmod(path, 0o600);
    await writeFile(path, '{"openedAt":0,"until":99999999999999}');
    const damaged = await readWindow(state, 8 * HOUR, NOW);
    assert.equal(damaged.open, false);
    assert.match(damaged.open ? '' : damaged.reason, /damaged/);
  });

  it("is closed when the host's clock stepped back past its opening, and open again once it is there", async () => {
    await openWindow(state, 15 * 60_000, 8 * HOUR, NOW);
    // A day back (an NTP step): without the check the window would stay open for a day and 15 minutes.
    const stepped = await readWindow(state, 8 * HOUR, NOW - 24 * HOUR);
    assert.equal(stepped.open, false);
    assert.match(stepped.open ? '' : stepped.reason, /later than this host's clock/);
    assert.equal((await readWindow(state, 8 * HOUR, NOW + 60_000)).open, true);
    await closeWindow(state, 8 * HOUR, NOW);
  });

  it(
    "is the agent user's to open: another user (root, by habit) is refused, saying whom to run as",
    {
      skip: process.getuid?.() === 0 ? false : 'needs root, to give the state directory to another user',
    },
    async () => {
      await checkWindowUser(state);
      const other = await mkdtemp(join(tmpdir(), 'dmz-window-other-'));
      try {
        await chown(other, 65534, 65534);
        await assert.rejects(checkWindowUser(other), {
          code: 'AGENT_ERR_WRITE_WINDOW',
          message: /belongs to uid 65534, not to this user \(uid 0\)/,
        });
      } finally {
        await rm(other, { recursive: true, force: true });
      }
    },
  );

  it('is closed when its file says it is open for longer than ot.writes.maxWindow', async () => {
    await openWindow(state, 2 * HOUR, 8 * HOUR, NOW);
    // The agent's maxWindow is now 1h (the config was changed, or the file written by hand).
    const longer = await readWindow(state, HOUR, NOW + 60_000);
    assert.equal(longer.open, false);
    assert.match(longer.open ? '' : longer.reason, /longer than ot\.writes\.maxWindow/);
    await writeFile(
      join(writesDir(state), WINDOW_FILE),
      `${JSON.stringify({ openedAt: NOW, until: NOW + 10 * 365 * 24 * HOUR, by: 'someone' })}\n`,
      { mode: 0o600 },
    );
    assert.equal((await readWindow(state, 8 * HOUR, NOW + 60_000)).open, false);
    await closeWindow(state, 8 * HOUR, NOW);
  });
});
