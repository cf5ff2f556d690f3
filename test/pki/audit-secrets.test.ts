/**
 * The PKI audit log against secrets an operator hands a command by mistake: an enrollment token
 * pasted where its jti or an agent's name belongs. The command refuses it, and its record must not
 * keep the token: the log goes to a SIEM and into every backup, and the token still enrolls.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { auditLogPath } from '../../pki/audit-log.ts';
import type { AuditRecord } from '../../pki/audit-record.ts';
import { createCaState } from '../support/ca-state.ts';
import { runPki } from '../support/pki-cli.ts';

let root: string;
let stateDir: string;
let token: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dmz-pki-audit-secrets-'));
  stateDir = join(root, 'state');
  await createCaState(stateDir);
  const created = await runPki(['--state', stateDir, 'token', 'create', '--name', 'press-1', '--role', 'ot']);
  assert.equal(created.code, 0, created.stderr);
  token = created.stdout.trim();
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const MISTAKES: readonly { name: string; args: (token: string) => string[] }[] = [
  { name: 'token revoke given the token instead of its jti', args: (t) => ['token', 'revoke', t] },
  { name: 'revoke given the token instead of the agent', args: (t) => ['revoke', t] },
  { name: 'revoke given the token inside other text', args: (t) => ['revoke', `press-1 ${t}\n`] },
];

describe('pki audit log - a token pasted by mistake', () => {
  for (const mistake of MISTAKES) {
    it(`${mistake.name}: refused, recorded, and the token is not in the log`, async () => {
      const run = await runPki(['--state', stateDir, ...mistake.args(token)]);
      assert.equal(run.code, 1, run.stdout);
      const text = readFileSync(auditLogPath(stateDir), 'utf8');
      const last = JSON.parse(text.trimEnd().split('\n').at(-1)!) as AuditRecord;
      assert.equal(last.outcome, 'refused');
      assert.equal(last.code, 'PKI_ERR_NOT_FOUND');
      // Not the token, nor the part of it that is its secret (the signature).
      assert.equal(text.includes(token.split('.')[2]!), false, 'the token is in the audit log');
      assert.match(JSON.stringify(last.target), /an enrollment token, withheld/);
      assert.equal(last.message?.includes('withheld'), true, last.message);
      const verified = await runPki(['--state', stateDir, 'audit', '--verify']);
      assert.equal(verified.code, 0, verified.stderr);
    });
  }
});
