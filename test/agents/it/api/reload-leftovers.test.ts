/**
 * What a reload of the users (SIGHUP: RunningItApi.reloadUsers) might leave behind: live streams,
 * authorised when they opened and open for days since, and the memo of a password found right.
 * A user removed, or given a new token or password because the old one leaked, must not keep
 * reading on a stream opened before, nor sign in with the old password the memo knew.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { waitFor } from '../../../support/wait.ts';
import { pointEntries } from '../sinks/sink-fixture.ts';
import { resolvedUser, startLoneApi } from './api-alone.ts';
import { addApiUser, basicAuth, openStream, request } from './api-plant.ts';

const PASSWORDS = { ada: 'ada lovelace 1815', ben: 'ben franklin 1706' } as const;
const TOPIC = 'press-7/plc/temp';

describe('agents/it/api - what a reload of the users leaves behind', () => {
  it("cuts the streams of a removed user and of a replaced token; the others' go on", async (t) => {
    const lone = await startLoneApi(t, async ({ addUser }) => [
      await addUser('ada', 'write', { password: PASSWORDS.ada }),
      await addUser('ben', 'read', { password: PASSWORDS.ben }),
      await addUser('scada', 'read', { token: true }),
    ]);
    const { api, dir } = lone;
    const token = (await readFile(`${dir}/scada.token`, 'utf8')).trim();
    const url = `${api.url}api/v1/stream?filter=%23`;
    const streams = {
      ada: await openStream(url, basicAuth('ada', PASSWORDS.ada)),
      ben: await openStream(url, basicAuth('ben', PASSWORDS.ben)),
      scada: await openStream(url, { authorization: `Bearer ${token}` }),
    };
    t.after(() => Object.values(streams).forEach((stream) => stream.close()));
    for (const stream of Object.values(streams)) assert.equal(stream.status, 200);
    await waitFor(
      () => Object.values(streams).every((stream) => stream.events.some((event) => event.event === 'hello')),
      'every stream said hello',
      30_000,
      20,
    );

    // ben removed; scada's token replaced (the old one leaked).
    await writeFile(`${dir}/scada.token`, `${'5ca0a'.repeat(13)}\n`, { mode: 0o600 });
    const kept = [
      { name: 'ada', role: 'write', passwordHashFile: `${dir}/ada.scrypt` },
      { name: 'scada', role: 'read', tokenFile: `${dir}/scada.token` },
    ] as const;
    await api.reloadUsers(kept.map(resolvedUser));

    const ended = new Set<string>();
    for (const [name, stream] of Object.entries(streams)) void stream.ended.then(() => ended.add(name));
    await waitFor(
      () => ended.has('ben') && ended.has('scada'),
      "ben's and scada's streams ended",
      30_000,
      20,
    );
    // ada's goes on: a point written now reaches it.
    await lone.store.write(pointEntries(TOPIC, 4, 1));
    await waitFor(
      () => streams.ada.events.some((event) => event.event === 'point' && event.data.seq === 4),
      "the new point on ada's stream",
      30_000,
      20,
    );
    assert.equal(ended.has('ada'), false);
    // And the reconnects are refused.
    assert.equal((await request(url, { headers: basicAuth('ben', PASSWORDS.ben) })).status, 401);
    assert.equal((await request(url, { headers: { authorization: `Bearer ${token}` } })).status, 401);
  });

  it('a password replaced by a reload: the old one is refused though it was remembered right', async (t) => {
    const lone = await startLoneApi(t, async ({ addUser }) => [
      await addUser('ada', 'write', { password: PASSWORDS.ada }),
    ]);
    const url = `${lone.api.url}api/v1/points`;
    // Signed in twice: the second is the memo's (auth.ts), not scrypt's.
    for (let time = 0; time < 2; time++)
      assert.equal((await request(url, { headers: basicAuth('ada', PASSWORDS.ada) })).status, 200);
    const fresh = join(lone.dir, 'new');
    await mkdir(fresh, { mode: 0o700 });
    const renewed = await addApiUser(fresh, 'ada', 'write', { password: 'a new password 2026' });
    await lone.api.reloadUsers([resolvedUser(renewed, 0)]);
    assert.equal((await request(url, { headers: basicAuth('ada', PASSWORDS.ada) })).status, 401);
    assert.equal((await request(url, { headers: basicAuth('ada', 'a new password 2026') })).status, 200);
  });
});
