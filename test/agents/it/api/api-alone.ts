/**
 * The IT agent's API alone: the real listener over a real recent-values store filled directly,
 * with users made by `dmz-agent api user add` (api-plant.ts), no relay and no OT side. For the
 * attacks on authentication and streams, which need neither; writes are the plant's (api-plant.ts),
 * though a test may hand this API a plant's write client, with a configuration the agent's own
 * config.ts would refuse (writable points and no users), to test the API's check beneath it.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import {
  DEFAULT_STREAMS_PER_USER,
  type ItApiConfig,
  type ItApiUser,
} from '../../../../agents/it/api/api-config.ts';
import { startItApi, type RunningItApi } from '../../../../agents/it/api/api-server.ts';
import { openRecentSink, type RecentSink } from '../../../../agents/it/sinks/recent-sink.ts';
import type { WriteClient } from '../../../../agents/it/write-client.ts';
import type { AgentStatus } from '../../../../agents/runtime/status.ts';
import { pointEntries } from '../sinks/sink-fixture.ts';
import { addApiUser, type ApiUserEntry } from './api-plant.ts';

export interface LoneApi {
  readonly api: RunningItApi;
  readonly store: RecentSink;
  /** The API's state directory: its write audit is under it. */
  readonly state: string;
  /** Where the users' credential files are made (0700). */
  readonly dir: string;
  /** Makes a user as an operator would, in `dir`. */
  addUser(
    name: string,
    role: 'read' | 'write',
    credentials: { readonly password?: string; readonly token?: boolean },
  ): Promise<ApiUserEntry>;
}

/** An it.api.users entry as agent config.ts resolves it. */
export function resolvedUser(entry: ApiUserEntry, index: number): ItApiUser {
  const at = `it.api.users[${index}]`;
  return {
    name: entry.name,
    role: entry.role,
    token: entry.tokenFile === undefined ? undefined : { file: entry.tokenFile, key: `${at}.tokenFile` },
    password:
      entry.passwordHashFile === undefined
        ? undefined
        : { file: entry.passwordHashFile, key: `${at}.passwordHashFile`, hashed: true },
  };
}

export interface LoneApiOptions {
  /** As it.api.maxStreamsPerUser (its default unless given). */
  readonly maxStreamsPerUser?: number;
  /** As it.api.writable (none unless given). */
  readonly writable?: ItApiConfig['writable'];
  /** The write client the API sends with (a plant's IT agent's); none unless given. */
  readonly writes?: Pick<WriteClient, 'write'> | undefined;
}

/**
 * The API on 127.0.0.1:0 for the users `makeUsers` makes (undefined: an API without users);
 * closed after the test.
 */
export async function startLoneApi(
  t: TestContext,
  makeUsers: (api: Pick<LoneApi, 'addUser' | 'dir'>) => Promise<readonly ApiUserEntry[] | undefined>,
  { maxStreamsPerUser = DEFAULT_STREAMS_PER_USER, writable = [], writes }: LoneApiOptions = {},
): Promise<LoneApi> {
  const parent = await mkdtemp(join(tmpdir(), 'dmz-api-alone-'));
  // One hook, in order: the listener, then the store, then the files.
  const closers: (() => Promise<void>)[] = [];
  t.after(async () => {
    for (const close of closers.reverse()) await close();
    await rm(parent, { recursive: true, force: true });
  });
  const dir = join(parent, 'users');
  await mkdir(dir, { mode: 0o700 });
  const addUser: LoneApi['addUser'] = (name, role, credentials) => addApiUser(dir, name, role, credentials);
  const users = await makeUsers({ addUser, dir });
  const store = await openRecentSink({
    name: 'recent',
    dir: join(parent, 'sink'),
    maxEntriesPerTopic: 1000,
    maxAgeMs: 86_400_000,
    snapshotIntervalMs: 3_600_000,
  });
  closers.push(() => store.close());
  await store.write(pointEntries('press-7/plc/temp', 1, 3));
  const state = join(parent, 'state');
  const api = await startItApi({
    config: {
      listen: { host: '127.0.0.1', port: 0 },
      store: 'recent',
      tls: undefined,
      users: users?.map(resolvedUser),
      maxStreamsPerUser,
      units: [],
      writable,
    },
    store,
    // The status route is the plant's to test (api-plant.ts); these tests never ask for it.
    status: () => ({ name: 'historian', role: 'it' }) as AgentStatus,
    writes,
    state,
    logger: pino({ level: 'silent' }),
    version: '0.0.0-test',
  });
  closers.push(() => api.close());
  return { api, store, state, dir, addUser };
}
