import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  loadCredentials,
  readEnrolledIdentity,
  storeCredentials,
  type AgentCredentialSet,
} from '../../agents/credentials.ts';
import { RENEW_AT_FRACTION, RENEWAL_JITTER_FRACTION, renewalDelayMs } from '../../agents/renewal.ts';
import { createTestPki, type TestPki } from '../support/test-pki.ts';

describe('agents/renewal', () => {
  let pki: TestPki;
  let dir: string;
  let first: AgentCredentialSet;
  let second: AgentCredentialSet;

  const credentialSet = async (): Promise<AgentCredentialSet> => {
    const issued = await pki.issueAgent('ot', 'press-7');
    const pems = { keyPem: issued.keyPem, certPem: issued.certPem, caPem: pki.ca.certPem };
    return { ...pems, identity: readEnrolledIdentity(pems) };
  };

  before(async () => {
    pki = await createTestPki();
    dir = await mkdtemp(join(tmpdir(), 'dmz-renewal-'));
    first = await credentialSet();
    second = await credentialSet();
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('is due at two thirds of the lifetime, give or take 5%, and at once when overdue', () => {
    const certificate = new X509Certificate(first.certPem);
    const notBefore = Date.parse(certificate.validFrom);
    const lifetime = Date.parse(certificate.validTo) - notBefore;
    const due = notBefore + lifetime * RENEW_AT_FRACTION;
    const jitter = lifetime * RENEWAL_JITTER_FRACTION;
    assert.equal(
      renewalDelayMs(first.certPem, notBefore, () => 0),
      due - jitter - notBefore,
    );
    assert.equal(
      renewalDelayMs(first.certPem, notBefore, () => 1),
      due + jitter - notBefore,
    );
    assert.equal(
      renewalDelayMs(first.certPem, notBefore, () => 0.5),
      due - notBefore,
    );
    assert.equal(
      renewalDelayMs(first.certPem, due + jitter + 1, () => 1),
      0,
    );
  });

  it('replaces credentials as a whole, and a crash mid-swap never leaves a key without its certificate', async () => {
    const agentDir = join(dir, 'agent');
    await mkdir(agentDir, { mode: 0o700 });
    await storeCredentials(agentDir, first);
    assert.equal((await loadCredentials(agentDir)).identity.serial, first.identity.serial);

    // A crash after staging the whole set and marking it ready: the next load finishes the swap.
    await writeFile(join(agentDir, 'key.pem.next'), second.keyPem, { mode: 0o600 });
    await writeFile(join(agentDir, 'cert.pem.next'), second.certPem, { mode: 0o600 });
    await writeFile(join(agentDir, 'swap.ready'), '', { mode: 0o600 });
    // ...and after renaming only the key: still a matching pair once loaded.
    await rename(join(agentDir, 'key.pem.next'), join(agentDir, 'key.pem'));
    await writeFile(join(agentDir, 'identity.json.next'), `${JSON.stringify(second.identity, null, 2)}\n`, {
      mode: 0o600,
    });
    assert.equal((await loadCredentials(agentDir)).identity.serial, second.identity.serial);
    assert.deepEqual((await readdir(agentDir)).sort(), ['ca.pem', 'cert.pem', 'identity.json', 'key.pem']);

    // A crash while staging (no marker): the staged files are discarded, the current set stays.
    await writeFile(join(agentDir, 'key.pem.next'), first.keyPem, { mode: 0o600 });
    assert.equal((await loadCredentials(agentDir)).identity.serial, second.identity.serial);
    assert.equal(await readFile(join(agentDir, 'key.pem'), 'utf8'), second.keyPem);
    assert.deepEqual((await readdir(agentDir)).sort(), ['ca.pem', 'cert.pem', 'identity.json', 'key.pem']);
  });
});
