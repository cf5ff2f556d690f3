/**
 * Who may open the CA's state (pki/state-owner.ts): one check for dmz-pki and the relay. A state
 * directory of another user is refused by both, each saying how to run it as the owner; a file in
 * it of another user is refused by the program that opens that file, naming it. The relay does
 * not open the PKI audit log or the token-signing key, so a stray owner there leaves it running;
 * dmz-pki does not open the relay's lock.
 */
import assert from 'node:assert/strict';
import { chownSync, closeSync, openSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PKI_CLI_OPENER, refuseOtherOwner } from '../../pki/state-owner.ts';
import { refuseOtherStateOwner } from '../../relay/server/relay-pki.ts';
import { createCaState } from '../support/ca-state.ts';

const NOBODY = { uid: 65534, gid: 65534 } as const;
/** What a running relay and its CA add to what `init` makes: each 0600, as they make them. */
const MADE_LATER = ['pki.db-wal', 'pki.db-shm', 'session-tickets.json', 'relay.lock'];
/** Neither opens it there: `restore` leaves the relay's configuration in the state when told no --config. */
const OPENED_BY_NEITHER = 'relay.yaml';

/** Each program, and the files of the state it does not open (a stray owner there is not its concern). */
const openers = [
  {
    name: 'dmz-pki',
    refuse: (dir: string) => refuseOtherOwner(dir, PKI_CLI_OPENER),
    leaves: new Set([OPENED_BY_NEITHER, 'relay.lock']),
  },
  {
    name: 'the relay',
    refuse: refuseOtherStateOwner,
    leaves: new Set([OPENED_BY_NEITHER, 'pki-audit.jsonl', 'token-signing-key.pem']),
  },
] as const;

describe(
  'state owner - dmz-pki and the relay refuse state of another user',
  { skip: process.getuid?.() !== 0 && 'only root can give files to another user' },
  () => {
    let dir: string;
    before(async () => {
      dir = join(await mkdtemp(join(tmpdir(), 'dmz-state-owner-')), 'state');
      await createCaState(dir);
      for (const file of [...MADE_LATER, OPENED_BY_NEITHER]) closeSync(openSync(join(dir, file), 'a', 0o600));
    });
    after(() => rm(join(dir, '..'), { recursive: true, force: true }));

    it('state owner - a directory of another user is refused by both, each saying how to run as its owner', () => {
      chownSync(dir, NOBODY.uid, NOBODY.gid);
      try {
        const message = `the state directory ${JSON.stringify(dir)} belongs to uid 65534 (nobody), not to this user (uid 0): files written now would be unreadable by its owner`;
        const run = "run it as the directory's owner: runuser -u nobody --";
        assert.throws(() => refuseOtherOwner(dir, PKI_CLI_OPENER), {
          code: 'PKI_ERR_STATE_OWNER',
          message,
          hint: `${run} dmz-pki ...`,
        });
        assert.throws(() => refuseOtherStateOwner(dir), {
          code: 'PKI_ERR_STATE_OWNER',
          message,
          hint: `${run} dmz-relay --config ..., or start its service: systemctl start dmz-relay`,
        });
      } finally {
        chownSync(dir, 0, 0);
      }
    });

    it('state owner - a file of another user is refused, naming it, by each program that opens it', () => {
      const files = readdirSync(dir).sort();
      for (const file of [...MADE_LATER, 'pki-audit.jsonl', 'token-signing-key.pem']) {
        assert.ok(files.includes(file), file);
      }
      for (const opener of openers) opener.refuse(dir);
      for (const file of files) {
        const path = join(dir, file);
        chownSync(path, NOBODY.uid, NOBODY.gid);
        try {
          for (const opener of openers) {
            if (opener.leaves.has(file)) {
              opener.refuse(dir);
              continue;
            }
            assert.throws(
              () => opener.refuse(dir),
              {
                code: 'PKI_ERR_STATE_OWNER',
                message: `${JSON.stringify(path)} belongs to uid 65534 (nobody), not to uid 0 (root), the owner of the state directory: left by a run as another user, it may be unreadable by the relay and dmz-pki`,
                hint: `give it back, as root: chown root ${JSON.stringify(path)}`,
              },
              `${opener.name}: ${file}`,
            );
          }
        } finally {
          chownSync(path, 0, 0);
        }
      }
    });
  },
);
