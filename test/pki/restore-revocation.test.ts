/**
 * What a restore of an older backup means for revocation. A certificate issued after the backup
 * (an agent enrolled, or renewed, on the old appliance since) chains to the CA but is unknown to
 * the restored store: `dmz-pki revoke NAME` cannot reach it, so a relay that admitted it would
 * keep a compromised agent in until its certificate expired. The relay admits only certificates
 * its store recorded; such an agent is refused and enrolls again. And the CRLs the old appliance
 * published after the backup must not be outnumbered by older-looking ones (RFC 5280 5.2.3).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RelayLink } from '../../agents/link/relay-link.ts';
import { runPkiCli } from '../../pki/cli.ts';
import { statePath } from '../../pki/state-layout.ts';
import {
  createCaState,
  enrollInProcess,
  startCaStateRelay,
  type EnrolledAgent,
} from '../support/ca-state.ts';
import { findTool, runTool } from '../support/system-tools.ts';

const ENV = { DMZ_BACKUP_PASSPHRASE: 'k3Vq8xW1pZr7Ls0YdN4mT6bJ' };

async function pki(args: readonly string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runPkiCli(args, ENV, {
    stdout: (data) => void (stdout += typeof data === 'string' ? data : Buffer.from(data).toString()),
    stderr: (text) => void (stderr += text),
  });
  return { code, stdout, stderr };
}

describe('restore of an older backup: certificates issued after it', () => {
  let dir: string;
  let restored: string;
  let known: EnrolledAgent;
  let late: EnrolledAgent;
  let restoreOutput: string;
  let old: string;
  /** The number of the last CRL the old appliance published, after the backup. */
  let oldCrlNumber: bigint;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-restore-revocation-'));
    old = join(dir, 'old');
    await createCaState(old);
    known = await enrollInProcess(old, 'ot', 'press-1');
    await enrollInProcess(old, 'ot', 'retired-1');
    await enrollInProcess(old, 'ot', 'retired-2');
    const backup = await pki(['--state', old, 'backup', '--out', join(dir, 'relay.backup')]);
    assert.equal(backup.code, 0, backup.stderr);
    // Enrolled on the old appliance after the backup (a renewal since is the same case).
    late = await enrollInProcess(old, 'ot', 'late-press');
    // And revoked two agents, each revocation publishing a CRL.
    for (const name of ['retired-1', 'retired-2']) {
      const revoked = await pki(['--state', old, 'revoke', name]);
      assert.equal(revoked.code, 0, revoked.stderr);
    }
    oldCrlNumber = await crlNumber(old);
    restored = join(dir, 'new');
    const restore = await pki(['--state', restored, 'restore', '--in', join(dir, 'relay.backup')]);
    assert.equal(restore.code, 0, restore.stderr);
    restoreOutput = restore.stderr;
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('cannot be revoked by name on the restored store, and the relay refuses it', async () => {
    const revoke = await pki(['--state', restored, 'revoke', 'late-press']);
    assert.equal(revoke.code, 1);
    assert.match(revoke.stderr, /PKI_ERR_NOT_FOUND/);

    const { relay, audit } = await startCaStateRelay(restored);
    try {
      const connect = (agent: EnrolledAgent) =>
        RelayLink.connect({
          url: `wss://127.0.0.1:${relay.agentPort}/v1/agent`,
          certPem: agent.certPem,
          keyPem: agent.keyPem,
          caPem: agent.caPem,
          connectTimeoutMs: 5000,
        });
      const link = await connect(known);
      assert.equal(link.welcome.name, 'press-1');
      await link.close();
      await assert.rejects(connect(late));
      await audit.waitFor(
        (entry) =>
          entry.event === 'agent.refused' &&
          entry['reason'] === 'RELAY_ERR_CERT_UNKNOWN' &&
          entry['serial'] === late.serialHex.toUpperCase(),
        'the certificate issued after the backup refused',
      );
    } finally {
      await relay.close();
    }
  });

  it('publishes CRL numbers above any the old appliance published after the backup', async () => {
    // An agent revoked since the backup is revoked again, as the restore's note asks.
    const again = await pki(['--state', restored, 'revoke', 'retired-1']);
    assert.equal(again.code, 0, again.stderr);
    assert.ok((await crlNumber(restored)) > oldCrlNumber, 'the CRL number only grows');
  });

  it('tells the operator at restore what the backup cannot hold', () => {
    assert.match(restoreOutput, /revoke again every agent revoked since/);
    assert.match(restoreOutput, /certificates issued since are refused/);
  });
});

/** The CRL Number extension of the state's crl.pem, as openssl reads it. */
async function crlNumber(stateDir: string): Promise<bigint> {
  const openssl = findTool('openssl');
  assert.ok(openssl !== undefined, 'openssl is installed');
  const run = await runTool(openssl, ['crl', '-in', statePath(stateDir, 'crl'), '-noout', '-crlnumber']);
  assert.equal(run.status, 0, run.stderr);
  const hex = /crlNumber=0x([0-9A-Fa-f]+)/.exec(run.stdout)?.[1];
  assert.ok(hex !== undefined, run.stdout);
  return BigInt(`0x${hex}`);
}
