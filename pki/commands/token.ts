/**
 * `dmz-pki token create|list|revoke`: one-time enrollment tokens. `create` prints the token and
 * nothing else, so `TOKEN=$(dmz-pki token create ...)` works; the token itself is never stored or
 * shown again, only its `jti`.
 */
import { flushOutput } from '../../relay/protocol/command-line.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { isAgentName, isRole, type Role } from '../../relay/protocol/identity.ts';
import { MAX_AGENT_NAME_LENGTH } from '../../relay/protocol/limits.ts';
import { explainAuditFailure } from '../audit-trail.ts';
import { formatDuration, parseDuration } from '../duration.ts';
import type { PkiStore, TokenRecord } from '../store.ts';
import { DEFAULT_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS, MIN_TOKEN_TTL_SECONDS } from '../token-rules.ts';
import {
  defineCommand,
  invalidArgument,
  quote,
  requireOption,
  withAuditedState,
  withState,
} from './command.ts';
import { checkEnrollmentUrls } from './enrollment-urls.ts';
import { formatTime, printJson, printTable } from './output.ts';
import { loadTokenSigningKey, PASSPHRASE_HELP, PASSPHRASE_OPTIONS, readPassphrase } from './passphrase.ts';

const MIN_TTL = formatDuration(MIN_TOKEN_TTL_SECONDS * 1000);
const MAX_TTL = formatDuration(MAX_TOKEN_TTL_SECONDS * 1000);

export const tokenCreateCommand = defineCommand({
  words: ['token', 'create'],
  summary: 'make a one-time enrollment token for an agent',
  usage: `Usage: dmz-pki --state DIR token create --name NAME --role ot|it [options]

Makes a one-time enrollment token (a signed JWT) for one agent and prints only the token.
The agent redeems it with: dmz-agent enroll --token TOKEN --dir DIR

Options:
  --name NAME          agent name: a lower-case DNS label, e.g. press-7 (required)
  --role ot|it         agent role (required)
  --ttl DURATION       how long the token is valid: ${MIN_TTL} to ${MAX_TTL}, e.g. 90s, 30m, 1h, 7d
                       (default: ${formatDuration(DEFAULT_TOKEN_TTL_SECONDS * 1000)})
  --url URL            enrollment URL to put in the token (repeatable; default: those from init)
${PASSPHRASE_HELP}
  --json               print {token, jti, name, role, expiresAt}`,
  options: {
    name: { type: 'string' },
    role: { type: 'string' },
    ttl: { type: 'string' },
    url: { type: 'string', multiple: true },
    ...PASSPHRASE_OPTIONS,
  },
  operands: [],
  async run({ values, stateDir, env, output }) {
    const name = requireOption(values.name, '--name');
    const role = requireOption(values.role, '--role');
    if (!isAgentName(name)) {
      throw invalidArgument(
        `--name must be a lower-case DNS label (a-z, 0-9 and inner '-', at most ${MAX_AGENT_NAME_LENGTH} characters): ${quote(name)}`,
      );
    }
    if (!isRole(role)) throw invalidArgument(`--role must be ot or it: ${quote(role)}`);
    const ttlSeconds = values.ttl === undefined ? DEFAULT_TOKEN_TTL_SECONDS : parseTtlSeconds(values.ttl);
    const urls = values.url === undefined ? undefined : checkEnrollmentUrls(values.url, '--url');
    const passphrase = await readPassphrase(values['passphrase-file'], env);
    await withAuditedState(stateDir, 'token create', async (state, audit) => {
      const now = new Date();
      audit.about({ name, role, ttlSeconds });
      refuseNameInOtherRole(state.store, name, role, now);
      const signingKeyPem = await loadTokenSigningKey(state, passphrase);
      const { createEnrollmentToken } = await import('../tokens.ts');
      const { token, jti, expiresAt } = await createEnrollmentToken({
        signingKeyPem,
        issuer: state.tokenIssuer,
        name,
        role,
        ttlSeconds,
        urls: urls ?? state.enrollmentUrls,
        caFingerprint: state.caFingerprint,
        now,
      });
      if (values.json === true) printJson(output, { token, jti, name, role, expiresAt });
      else output.stdout(`${token}\n`);
      // Printed first, recorded once it is out: a token lost on the way (`> /dev/full`) is then
      // one the relay does not know and will never redeem, rather than a live secret nobody has.
      try {
        await flushOutput(output, true);
      } catch (error) {
        throw error instanceof DmzError
          ? new DmzError(error.code, `${error.message}: the token was not recorded and cannot enroll`, {
              cause: error,
              hint: 'run token create again with standard output going somewhere that takes it',
            })
          : error;
      }
      // The jti and never the token: the log must not hold a secret that enrolls.
      audit.about({ jti, expiresAt: expiresAt.toISOString(), urls: urls ?? state.enrollmentUrls });
      try {
        audit.commit(() => state.store.recordToken({ jti, name, role, createdAt: now, expiresAt }));
      } catch (error) {
        throw explainAuditFailure(error, 'the token was not recorded and cannot enroll');
      }
    });
  },
});

export const tokenListCommand = defineCommand({
  words: ['token', 'list'],
  summary: 'list enrollment tokens (never the tokens themselves, only their jti)',
  usage: `Usage: dmz-pki --state DIR token list [--all]

Lists the enrollment tokens that can still be redeemed: jti, agent name, role, expiry, status.

Options:
  --all                also list used, revoked and expired tokens`,
  options: {
    all: { type: 'boolean' },
  },
  operands: [],
  async run({ values, stateDir, output }) {
    const tokens = await withState(stateDir, (state) =>
      state.store.listTokens({ includeSpent: values.all === true }),
    );
    if (values.json === true) {
      printJson(output, tokens.map(describeToken));
      return;
    }
    printTable(
      output,
      ['JTI', 'NAME', 'ROLE', 'EXPIRES', 'STATUS'],
      tokens.map((t) => [t.jti, t.name, t.role, formatTime(t.expiresAt), t.status]),
    );
  },
});

export const tokenRevokeCommand = defineCommand({
  words: ['token', 'revoke'],
  summary: 'revoke an enrollment token that has not been used',
  usage: `Usage: dmz-pki --state DIR token revoke JTI

Revokes an unused enrollment token (JTI as shown by 'token list'). A token that was used
has become a certificate: revoke that with 'dmz-pki revoke NAME'.`,
  options: {},
  operands: ['JTI'],
  async run({ values, operands: [jti = ''], stateDir, output }) {
    await withAuditedState(stateDir, 'token revoke', (state, audit) => {
      audit.about({ jti });
      audit.commit(() => {
        try {
          state.store.revokeToken(jti);
        } catch (error) {
          throw explainRevokeFailure(error, jti);
        }
      });
    });
    if (values.json === true) printJson(output, { jti, status: 'revoked' });
    else output.stdout(`revoked token ${jti}\n`);
  },
});

function parseTtlSeconds(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) {
    throw invalidArgument(
      `--ttl must be a whole number and one unit (s, m, h, d), e.g. 30m or 1h: ${quote(text)}`,
    );
  }
  const seconds = ms / 1000;
  if (seconds < MIN_TOKEN_TTL_SECONDS || seconds > MAX_TOKEN_TTL_SECONDS) {
    throw invalidArgument(`--ttl must be from ${MIN_TTL} to ${MAX_TTL}: ${quote(text)}`);
  }
  return seconds;
}

function describeToken(token: TokenRecord) {
  const { jti, name, role, status, createdAt, expiresAt, usedAt, revokedAt, usedBySerial } = token;
  return { jti, name, role, status, createdAt, expiresAt, usedAt, revokedAt, usedBySerial };
}

function explainRevokeFailure(error: unknown, jti: string): unknown {
  if (!(error instanceof DmzError)) return error;
  if (error.code === 'PKI_ERR_NOT_FOUND') {
    return new DmzError('PKI_ERR_NOT_FOUND', `no token with jti ${quote(jti)}`, {
      hint: "'dmz-pki token list --all' lists every token's jti",
    });
  }
  if (error.code === 'PKI_ERR_TOKEN_USED') {
    return new DmzError('PKI_ERR_TOKEN_USED', `token ${quote(jti)} has already been used`, {
      hint: "revoke the agent's certificate instead: 'dmz-pki revoke NAME'",
    });
  }
  return error;
}

/**
 * One name, one role: the relay keys connections and `agent:` policy rules by name, so an `it`
 * certificate for a name an `ot` agent holds would take its place and its grants.
 */
function refuseNameInOtherRole(store: PkiStore, name: string, role: Role, now: Date): void {
  const holder =
    store
      .findCertificates(name, { now })
      .find((c) => c.name === name && c.status === 'valid' && c.role !== role) ??
    store.listTokens({ now }).find((t) => t.name === name && t.role !== role);
  if (holder !== undefined) {
    throw new DmzError(
      'PKI_ERR_NAME_TAKEN',
      `${quote(name)} is already enrolled or invited as role ${holder.role}`,
      {
        hint: `revoke it first ('dmz-pki revoke ${name}') or choose another name`,
      },
    );
  }
}
