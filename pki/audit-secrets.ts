/**
 * What the PKI audit log must never keep, taken out of a record before it is written
 * (audit-log.ts): an enrollment token pasted where its jti or an agent's name belongs
 * (`dmz-pki token revoke <token>`, `dmz-pki revoke <token>`). The command refuses it, and the
 * refusal's record would otherwise hold a token that still enrolls, in a file that goes to a SIEM
 * and into every backup. The commands themselves record names, serials and jtis only; this is
 * for what an operator hands them by mistake.
 */
import type { AuditEntry, AuditTarget } from './audit-record.ts';

/**
 * A compact JWS (RFC 7515 section 7.1), the form of every enrollment token: a base64url header
 * that starts `{"` (`eyJ`), a payload and a signature. Nothing a command records looks like it.
 */
const COMPACT_JWS = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+/g;
export const WITHHELD_TOKEN = '[an enrollment token, withheld]';

export function withholdSecrets(entry: AuditEntry): AuditEntry {
  return {
    ...entry,
    target: Object.fromEntries(
      Object.entries(entry.target).map(([key, value]) => [key, withholdInValue(value)]),
    ),
    ...(entry.message === undefined ? {} : { message: withholdInText(entry.message) }),
  };
}

function withholdInValue(value: AuditTarget[string]): AuditTarget[string] {
  if (typeof value === 'string') return withholdInText(value);
  if (Array.isArray(value)) return value.map((item: string) => withholdInText(item));
  return value;
}

function withholdInText(text: string): string {
  return text.replace(COMPACT_JWS, WITHHELD_TOKEN);
}
