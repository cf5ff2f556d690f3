/**
 * The PKI audit log against SIGKILL at each step of the commands that write files besides the
 * store: `relay-cert` (the relay's key and certificate), `backup` (a file holding the CA's keys),
 * `crl` (a CRL reissued, behind a revocation made without the CA key) and `revoke` (the store,
 * then the CRL). strace kills the real process at the Nth rename, fsync or fdatasync, for every N
 * the command reaches; after each kill a change on disk (the relay's pair replaced, a backup file
 * or its part-written copy there, a new CRL) must have its record committed in the store before
 * it, and the log must verify, and verify again once the command has been run anew.
 * UV_THREADPOOL_SIZE=1: strace counts a system call per thread, and libuv's pool does the files'.
 * About a minute of processes: `npm run test:pki-kill`, in CI (.ci/run installs strace).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { auditLogPath, readAuditHead } from '../../pki/audit-log.ts';
import type { AuditRecord } from '../../pki/audit-record.ts';
import { openState } from '../../pki/state.ts';
import { statePath } from '../../pki/state-layout.ts';
import { createCaState, enrollInProcess } from '../support/ca-state.ts';
import { runPki } from '../support/pki-cli.ts';
import { findTool } from '../support/system-tools.ts';

const BIN = fileURLToPath(new URL('../../bin/dmz-pki.js', import.meta.url));
const BACKUP_PASSPHRASE = 'k3Vq8xW1pZr7Ls0YdN4mT6bJ';
const KILL_AT = ['rename', 'fsync', 'fdatasync'] as const;
/** relay-cert makes 13 of these calls, backup fewer: a bound should strace stop killing. */
const MAX_KILLS_PER_CALL = 40;
/** A bound on a hung process, not a measure: a run takes about a second. */
const RUN_DEADLINE_MS = 60_000;

/** The files a command may replace, as they were before it ran. */
interface Before {
  readonly pair: string;
  readonly crl: string;
}

interface Attacked {
  readonly command: string;
  readonly args: (root: string) => string[];
  /** Puts the copied state where the command has work to do. */
  readonly prepare?: (stateDir: string) => Promise<void>;
  /** What the command left on disk that it must not leave unrecorded. */
  readonly changed: (stateDir: string, root: string, before: Before) => boolean | Promise<boolean>;
}

const pairOf = (stateDir: string) =>
  readFileSync(statePath(stateDir, 'relayKey'), 'utf8') +
  readFileSync(statePath(stateDir, 'relayCertificate'), 'utf8');
const crlOf = (stateDir: string) => readFileSync(statePath(stateDir, 'crl'), 'utf8');

const ATTACKED: readonly Attacked[] = [
  {
    command: 'relay-cert',
    args: () => ['relay-cert'],
    changed: (stateDir, _, before) => pairOf(stateDir) !== before.pair,
  },
  {
    command: 'backup',
    args: (root) => ['backup', '--out', join(root, 'ca.backup')],
    // The backup, or the copy it is written to first: either holds the CA's keys.
    changed: (_, root) => readdirSync(root).some((name) => name.startsWith('ca.backup')),
  },
  {
    command: 'crl',
    args: () => ['crl'],
    // Revoked in the store alone, as `revoke` leaves it when the CA key stays locked: due for reissue.
    prepare: async (stateDir) => {
      const state = await openState(stateDir);
      try {
        state.store.revokeCertificates('press-9', 'keyCompromise', new Date());
      } finally {
        state.close();
      }
    },
    changed: (stateDir, _, before) => crlOf(stateDir) !== before.crl,
  },
  {
    command: 'revoke',
    args: () => ['revoke', 'press-9'],
    changed: async (stateDir) => {
      const state = await openState(stateDir);
      try {
        return state.store.listCertificates().some((certificate) => certificate.status === 'revoked');
      } finally {
        state.close();
      }
    },
  },
];

let root: string;
let template: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dmz-pki-audit-sigkill-'));
  template = join(root, 'template');
  await createCaState(template);
  await enrollInProcess(template, 'ot', 'press-9');
  (await openState(template)).close();
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** dmz-pki under strace, killed by SIGKILL at the `nth` call of `call`; true when it was. */
function runKilledAt(stateDir: string, args: readonly string[], call: string, nth: number): Promise<boolean> {
  const strace = [
    '-f',
    '-qq',
    '-o',
    '/dev/null',
    '-e',
    `trace=${call}`,
    '-e',
    `inject=${call}:signal=KILL:when=${nth}`,
  ];
  return new Promise((resolve, reject) => {
    execFile(
      STRACE ?? 'strace',
      [...strace, process.execPath, BIN, '--state', stateDir, ...args],
      {
        timeout: RUN_DEADLINE_MS,
        env: {
          PATH: process.env.PATH ?? '',
          UV_THREADPOOL_SIZE: '1',
          DMZ_BACKUP_PASSPHRASE: BACKUP_PASSPHRASE,
        },
      },
      (error) => {
        if (error === null) resolve(false);
        // strace ends as its tracee did: by SIGKILL.
        else if (error.signal === 'SIGKILL' && !error.killed) resolve(true);
        else
          reject(
            new Error(`${args.join(' ')} killed at ${call} #${nth} exited ${String(error.code)}`, {
              cause: error,
            }),
          );
      },
    );
  });
}

/** The record the store's head names, if the store committed one. */
async function committedRecord(stateDir: string): Promise<AuditRecord | undefined> {
  const state = await openState(stateDir);
  try {
    const head = readAuditHead(state.store);
    if (head === undefined || head === 'damaged') return undefined;
    const lines = readFileSync(auditLogPath(stateDir), 'utf8').split('\n');
    return JSON.parse(lines[head.seq - 1] ?? 'null') as AuditRecord;
  } finally {
    state.close();
  }
}

const STRACE = findTool('strace');
/** Under CI the test fails, not skips, without strace. */
const SKIP = STRACE === undefined && process.env.CI !== 'true' && 'no strace: apt-get install strace';

describe('pki audit log - SIGKILL at each step', { skip: SKIP }, () => {
  for (const attacked of ATTACKED) {
    it(`${attacked.command}: whatever it leaves on disk, its record committed first`, async () => {
      const kills: string[] = [];
      for (const call of KILL_AT) {
        for (let nth = 1; nth <= MAX_KILLS_PER_CALL; nth += 1) {
          const where = join(root, `${attacked.command}-${call}-${nth}`);
          const stateDir = join(where, 'state');
          cpSync(template, stateDir, { recursive: true });
          await attacked.prepare?.(stateDir);
          const before = { pair: pairOf(stateDir), crl: crlOf(stateDir) };
          const args = attacked.args(where);
          if (!(await runKilledAt(stateDir, args, call, nth))) break;
          assert.notEqual(nth, MAX_KILLS_PER_CALL, `${call} killed ${MAX_KILLS_PER_CALL} times over`);
          kills.push(`${call} #${nth}`);
          const record = await committedRecord(stateDir);
          if (await attacked.changed(stateDir, where, before)) {
            assert.deepEqual(
              [record?.command, record?.outcome],
              [attacked.command, 'ok'],
              `killed at ${call} #${nth}: changed on disk, and the store's last record is ${JSON.stringify(record?.command)}`,
            );
          }
          const verified = await runPki(['--state', stateDir, 'audit', '--verify']);
          assert.equal(verified.code, 0, `killed at ${call} #${nth}: ${verified.stderr}`);
          // The command run anew: done and recorded, the log intact.
          const elsewhere = join(where, 'again');
          mkdirSync(elsewhere);
          const again = await runPki(['--state', stateDir, ...attacked.args(elsewhere)], {
            DMZ_BACKUP_PASSPHRASE: BACKUP_PASSPHRASE,
          });
          assert.equal(again.code, 0, again.stderr);
          const reverified = await runPki(['--state', stateDir, 'audit', '--verify']);
          assert.equal(reverified.code, 0, `killed at ${call} #${nth}, then run again: ${reverified.stderr}`);
          await rm(where, { recursive: true, force: true });
        }
      }
      assert.ok(kills.length >= 5, `killed at ${kills.join(', ')}`);
    });
  }
});
