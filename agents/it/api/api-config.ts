/**
 * The IT agent's HTTP API section of agent.yaml (`it.api`): schema and resolution. agent config.ts
 * embeds the schema, resolves paths and checks what needs the rest of the file (the store names a
 * recent sink; a listener off loopback needs TLS and authentication).
 *
 * Who may use the API: `users`, each a person or a program with its own credential (a token
 * file, a password hash file or both) and a role. The older single secret (`auth`, one token or
 * one password for everyone) still works, as one user of role write: refusing it would stop an
 * upgraded agent at start, its sinks and consumers with it, for a setting that worked the day
 * before. It identifies no one, and README says so. Without either, the API (loopback only) serves
 * reads alone: a write must name its user, so `writable` without a user of role write is refused.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ConfigIssue } from '../../../relay/protocol/errors.ts';
import { validateFilter } from '../../../relay/protocol/topics.ts';

/** The port README and the IT host's nftables ruleset name. */
export const DEFAULT_API_PORT = 8080;

const File = Type.String({ minLength: 1, maxLength: 4096 });

/** Users one API lists at most: a plant's engineers and programs, far from this. */
export const MAX_API_USERS = 256;

/** Live streams the API serves at once, all users together: each holds a store follower, a queue, a socket. */
export const MAX_STREAMS = 64;
/**
 * Live streams one user may hold open at once, unless it.api.maxStreamsPerUser says otherwise: a
 * dashboard holds one per browser tab, a program one or two; eight leave room for a person's
 * tabs, and eight such users before the API's MAX_STREAMS, so one user cannot take them all.
 */
export const DEFAULT_STREAMS_PER_USER = 8;

/** What a user may do: `read` everything the API serves; `write` also sends writes. */
export const API_ROLES = ['read', 'write'] as const;
export type ApiRole = (typeof API_ROLES)[number];

/**
 * A user's name: what the audit names and basic auth sends before its colon (RFC 7617 section 2
 * forbids one in it); no spaces or controls, so an audit line or a log shows it as it is.
 */
export const API_USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

const UserSchema = Type.Object(
  {
    name: Type.String({ pattern: API_USER_NAME.source }),
    role: Type.Union(API_ROLES.map((role) => Type.Literal(role))),
    /** A bearer token, its first line (0600, at least 16 characters). */
    tokenFile: Type.Optional(File),
    /** The password's scrypt hash (0600), as `dmz-agent api user add` writes it. */
    passwordHashFile: Type.Optional(File),
  },
  { additionalProperties: false },
);

export const ItApiSchema = Type.Object(
  {
    listen: Type.Object(
      {
        host: Type.String({ minLength: 1, maxLength: 255, default: '127.0.0.1' }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: DEFAULT_API_PORT }),
      },
      { additionalProperties: false, default: {} },
    ),
    /** The recent-values sink (by name) the API and dashboard read; default the only one. */
    store: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    tls: Type.Optional(Type.Object({ cert: File, key: File }, { additionalProperties: false })),
    users: Type.Optional(Type.Array(UserSchema, { minItems: 1, maxItems: MAX_API_USERS })),
    /**
     * Live streams one user may hold at once (the shared `auth` secret is one user: everyone who
     * holds it shares these). At most MAX_STREAMS, which bounds all users together.
     */
    maxStreamsPerUser: Type.Integer({ minimum: 1, maximum: MAX_STREAMS, default: DEFAULT_STREAMS_PER_USER }),
    /** The single shared secret of earlier versions: one user of role write (see above). */
    auth: Type.Optional(
      Type.Union([
        Type.Object({ bearerTokenFile: File }, { additionalProperties: false }),
        Type.Object(
          {
            basic: Type.Object(
              { user: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^:]+$' }), passwordFile: File },
              { additionalProperties: false },
            ),
          },
          { additionalProperties: false },
        ),
      ]),
    ),
    /** Engineering units by topic filter, for the dashboard and the API (the first match wins). */
    units: Type.Array(
      Type.Object(
        {
          filter: Type.String({ minLength: 1, maxLength: 256 }),
          unit: Type.String({ minLength: 1, maxLength: 32 }),
        },
        { additionalProperties: false },
      ),
      { maxItems: 1024, default: [] },
    ),
    /**
     * Topics the dashboard offers a write control for, and POST /api/v1/writes accepts, with the
     * value type the control takes. The OT agent checks every write itself (ot.writes): this list
     * only keeps the API from sending what no one meant to offer.
     */
    writable: Type.Array(
      Type.Object(
        {
          filter: Type.String({ minLength: 1, maxLength: 256 }),
          type: Type.Union([Type.Literal('number'), Type.Literal('boolean'), Type.Literal('string')]),
        },
        { additionalProperties: false },
      ),
      { maxItems: 1024, default: [] },
    ),
  },
  { additionalProperties: false },
);

/** A secret file, and the key that names it (for messages). */
export interface SecretFile {
  readonly file: string;
  readonly key: string;
}

export interface ItApiUser {
  readonly name: string;
  readonly role: ApiRole;
  readonly token: SecretFile | undefined;
  /** `hashed`: a scrypt hash (users); otherwise the password itself (the shared `auth.basic`). */
  readonly password: (SecretFile & { readonly hashed: boolean }) | undefined;
}

/** The user `auth.bearerTokenFile` stands for: whoever holds the token, named so in the audit. */
export const SHARED_TOKEN_USER = 'shared-token';

export interface ItApiConfig {
  readonly listen: { readonly host: string; readonly port: number };
  readonly store: string;
  readonly tls: { readonly cert: string; readonly key: string } | undefined;
  /** Who may use the API; undefined: anyone who reaches it (loopback only), as role read. */
  readonly users: readonly ItApiUser[] | undefined;
  /** Live streams one user may hold at once; without users, only MAX_STREAMS bounds them. */
  readonly maxStreamsPerUser: number;
  readonly units: readonly { readonly filter: string; readonly unit: string }[];
  readonly writable: readonly { readonly filter: string; readonly type: 'number' | 'boolean' | 'string' }[];
}

/** Resolves the section; `recentSinks` are the names of the `type: recent` sinks. */
export function resolveItApi(
  raw: Static<typeof ItApiSchema>,
  recentSinks: readonly string[],
  path: (value: string) => string,
  issues: ConfigIssue[],
): ItApiConfig {
  let store = raw.store;
  if (store === undefined) {
    if (recentSinks.length !== 1) {
      issues.push({
        path: '/it/api/store',
        message:
          recentSinks.length === 0
            ? 'the API needs a sink of type recent in it.sinks to serve'
            : 'name the recent sink the API serves (there are several)',
      });
    }
    store = recentSinks[0] ?? '';
  } else if (!recentSinks.includes(store)) {
    issues.push({ path: '/it/api/store', message: 'names no sink of type recent in it.sinks' });
  }
  for (const key of ['units', 'writable'] as const) {
    raw[key].forEach(({ filter }, index) => {
      try {
        validateFilter(filter);
      } catch (error) {
        issues.push({ path: `/it/api/${key}/${index}/filter`, message: (error as Error).message });
      }
    });
  }
  const users = resolveUsers(raw, path, issues);
  checkWriters(raw, users, issues);
  return {
    listen: raw.listen,
    store,
    tls: raw.tls === undefined ? undefined : { cert: path(raw.tls.cert), key: path(raw.tls.key) },
    users,
    maxStreamsPerUser: raw.maxStreamsPerUser,
    units: raw.units,
    writable: raw.writable,
  };
}

/**
 * Points offered for writing need someone who may write them: without users the API takes no
 * write (anyone on loopback is role read, auth.ts), and users of role read alone cannot either. Such
 * a configuration would show write types on the page and refuse every write, so it is refused at
 * start, where the operator sees why.
 */
function checkWriters(
  raw: Static<typeof ItApiSchema>,
  users: readonly ItApiUser[] | undefined,
  issues: ConfigIssue[],
): void {
  if (raw.writable.length === 0 || users?.some((user) => user.role === 'write') === true) return;
  const why =
    users === undefined ? 'without users the API takes no writes' : 'every user there has role read';
  issues.push({
    path: '/it/api/writable',
    message: `it.api.writable needs a user of role write in it.api.users (dmz-agent api user add NAME --role write): ${why}`,
  });
}

function resolveUsers(
  raw: Static<typeof ItApiSchema>,
  path: (value: string) => string,
  issues: ConfigIssue[],
): ItApiUser[] | undefined {
  const { auth, users } = raw;
  if (auth !== undefined && users !== undefined) {
    issues.push({ path: '/it/api/auth', message: 'give it.api.users or it.api.auth, not both' });
  }
  if (users === undefined) {
    if (auth === undefined) return undefined;
    return 'bearerTokenFile' in auth
      ? [
          {
            name: SHARED_TOKEN_USER,
            role: 'write',
            token: { file: path(auth.bearerTokenFile), key: 'it.api.auth.bearerTokenFile' },
            password: undefined,
          },
        ]
      : [
          {
            name: auth.basic.user,
            role: 'write',
            token: undefined,
            password: {
              file: path(auth.basic.passwordFile),
              key: 'it.api.auth.basic.passwordFile',
              hashed: false,
            },
          },
        ];
  }
  const seen = new Set<string>();
  return users.map((user, index) => {
    const at = `it.api.users[${index}]`;
    if (seen.has(user.name))
      issues.push({ path: `/it/api/users/${index}/name`, message: `names ${user.name} a second time` });
    seen.add(user.name);
    if (user.tokenFile === undefined && user.passwordHashFile === undefined) {
      issues.push({
        path: `/it/api/users/${index}`,
        message: 'needs a credential: tokenFile, passwordHashFile or both',
      });
    }
    return {
      name: user.name,
      role: user.role,
      token:
        user.tokenFile === undefined ? undefined : { file: path(user.tokenFile), key: `${at}.tokenFile` },
      password:
        user.passwordHashFile === undefined
          ? undefined
          : { file: path(user.passwordHashFile), key: `${at}.passwordHashFile`, hashed: true },
    };
  });
}
