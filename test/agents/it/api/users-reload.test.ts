/**
 * API users reloaded by SIGHUP, in a real `dmz-agent run` process: a user removed from agent.yaml
 * is refused from the reload on, the others served, no restart needed; a reload whose credential
 * file the agent refuses changes nothing.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KillableProcess } from '../../../support/killable-process.ts';
import { waitFor } from '../../../support/wait.ts';
import {
  addApiUser,
  basicAuth,
  createApiPlant,
  OT,
  request,
  type ApiPlant,
  type ApiUserEntry,
} from './api-plant.ts';

const PASSWORDS = { ada: 'ada lovelace 1815', ben: 'ben franklin 1706' } as const;

interface LogLine {
  readonly msg?: string;
  readonly url?: string;
  readonly apiUsers?: number;
  readonly restartRequired?: string[];
}

describe('agents/it/api - users reloaded by SIGHUP', () => {
  let plant: ApiPlant;
  let agent: KillableProcess;
  let configFile: string;
  let credentials: string;
  let users: Record<'ada' | 'ben', ApiUserEntry>;
  let base: string;

  const logLines = async (): Promise<LogLine[]> =>
    (await readFile(agent.incarnations.at(-1)!.stderrFile, 'utf8'))
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);
  const writeConfig = (list: readonly ApiUserEntry[]) =>
    plant.plant.configFile('screen.yaml', {
      credentials,
      state: join(plant.plant.dir, 'screen-state'),
      it: {
        sinks: [{ name: 'recent', type: 'recent' }],
        consume: [{ from: OT, sink: 'recent' }],
        api: { listen: { host: '127.0.0.1', port: 0 }, users: list },
      },
    });
  const statusAs = async (user: 'ada' | 'ben') =>
    (await request(`${base}api/v1/status`, { headers: basicAuth(user, PASSWORDS[user]) })).status;
  const hangUp = async (reloads: number) => {
    process.kill(agent.incarnations.at(-1)!.pid, 'SIGHUP');
    return waitFor(
      async () => {
        const done = (await logLines()).filter(
          (line) =>
            line.msg === 'configuration reloaded' ||
            line.msg === 'configuration reload refused; keeping the running one',
        );
        return done.length >= reloads ? done.at(-1) : undefined;
      },
      `reload ${reloads}`,
      60_000,
      50,
    );
  };

  before(async () => {
    plant = await createApiPlant();
    const dir = join(plant.plant.dir, 'api-users');
    await mkdir(dir, { mode: 0o700 });
    users = {
      ada: await addApiUser(dir, 'ada', 'write', { password: PASSWORDS.ada }),
      ben: await addApiUser(dir, 'ben', 'read', { password: PASSWORDS.ben }),
    };
    credentials = await plant.plant.enroll('it', 'screen');
    configFile = await writeConfig([users.ada, users.ben]);
    agent = await plant.plant.agentProcess('screen', configFile);
    agent.start();
    base = await waitFor(
      async () => (await logLines()).find((line) => line.msg === 'API and dashboard listening')?.url,
      'the API listening',
      60_000,
      50,
    );
  });
  after(async () => {
    await agent.stop();
    await plant.close();
  });

  it('refuses a user removed from agent.yaml after a SIGHUP, and serves the others; nothing needs a restart', async () => {
    assert.equal(await statusAs('ben'), 200);
    await writeConfig([users.ada]);
    const reloaded = await hangUp(1);
    assert.equal(reloaded.msg, 'configuration reloaded');
    assert.equal(reloaded.apiUsers, 1);
    assert.deepEqual(reloaded.restartRequired, []);
    assert.equal(await statusAs('ben'), 401);
    assert.equal(await statusAs('ada'), 200);
  });

  it('keeps its users when a reload names a file it refuses (ben back, his hash open to others)', async () => {
    await chmod(users.ben.passwordHashFile!, 0o644);
    await writeConfig([users.ada, users.ben]);
    const refused = await hangUp(2);
    assert.equal(refused.msg, 'configuration reload refused; keeping the running one');
    assert.equal(await statusAs('ben'), 401);
    assert.equal(await statusAs('ada'), 200);
    await chmod(users.ben.passwordHashFile!, 0o600);
    assert.equal((await hangUp(3)).msg, 'configuration reloaded');
    assert.equal(await statusAs('ben'), 200);
  });
});
