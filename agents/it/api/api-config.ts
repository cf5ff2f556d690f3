/**
 * The IT agent's HTTP API section of agent.yaml (`it.api`): schema and resolution. agent config.ts
 * embeds the schema, resolves paths and checks what needs the rest of the file (the store names a
 * recent sink; a listener off loopback needs TLS and authentication).
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ConfigIssue } from '../../../relay/protocol/errors.ts';
import { validateFilter } from '../../../relay/protocol/topics.ts';

/** The port README and the IT host's nftables ruleset name. */
export const DEFAULT_API_PORT = 8080;

const File = Type.String({ minLength: 1, maxLength: 4096 });

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

export type ItApiAuth =
  | { readonly kind: 'bearer'; readonly tokenFile: string }
  | { readonly kind: 'basic'; readonly user: string; readonly passwordFile: string };

export interface ItApiConfig {
  readonly listen: { readonly host: string; readonly port: number };
  readonly store: string;
  readonly tls: { readonly cert: string; readonly key: string } | undefined;
  readonly auth: ItApiAuth | undefined;
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
  const auth = raw.auth;
  return {
    listen: raw.listen,
    store,
    tls: raw.tls === undefined ? undefined : { cert: path(raw.tls.cert), key: path(raw.tls.key) },
    auth:
      auth === undefined
        ? undefined
        : 'bearerTokenFile' in auth
          ? { kind: 'bearer', tokenFile: path(auth.bearerTokenFile) }
          : { kind: 'basic', user: auth.basic.user, passwordFile: path(auth.basic.passwordFile) },
    units: raw.units,
    writable: raw.writable,
  };
}
