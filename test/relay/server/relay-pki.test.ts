import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { RelayLink } from '../../../agents/link/relay-link.ts';
import { initializeState } from '../../../pki/state.ts';
import { openPkiStore } from '../../../pki/store.ts';
import { createAuditLog } from '../../../relay/server/audit.ts';
import { validateRelayConfig } from '../../../relay/server/config.ts';
import { startRelay, type RunningRelay } from '../../../relay/server/relay.ts';
import {
  CA_STATE_TRUST_DOMAIN,
  createCaState,
  enrollInProcess,
  type EnrolledAgent,
} from '../../support/ca-state.ts';
import { AuditRecorder } from '../../support/relay-harness.ts';

describe('relay/server relay-pki', () => {
  let dir: string;
  let state: string;
  let relay: RunningRelay | undefined;
  const audit = new AuditRecorder();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-relay-pki-'));
    state = join(dir, 'state');
    await createCaState(state);
  });
  after(async () => {
    await relay?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const configFor = (stateDir: string, passphraseFile?: string) =>
    validateRelayConfig(
      {
        trustDomain: CA_STATE_TRUST_DOMAIN,
        state: stateDir,
        listen: {
          agents: { host: '127.0.0.1', port: 0 },
          admin: { host: '127.0.0.1', port: 0 },
          enrollment: { host: '127.0.0.1', port: 0, mode: 'off' },
        },
        log: { level: 'silent' },
        policy: [{ role: 'ot' }],
        ...(passphraseFile === undefined ? {} : { pki: { passphraseFile } }),
      },
      dir,
    );

  it('relay - an encrypted CA key: refused to start without, with an empty or a wrong passphrase; starts with it', async () => {
    const encrypted = join(dir, 'encrypted');
    await initializeState({
      stateDir: encrypted,
      trustDomain: CA_STATE_TRUST_DOMAIN,
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      enrollmentUrls: [],
      caKeyBits: 2048,
      passphrase: 'correct horse',
    });
    const file = (name: string, contents: string) => {
      const path = join(dir, name);
      writeFileSync(path, contents, { mode: 0o600 });
      return path;
    };
    const quiet = { audit: createAuditLog(new AuditRecorder().stream), log: pino({ level: 'silent' }) };
    for (const passphraseFile of [
      undefined,
      file('empty.pass', '\n'),
      file('wrong.pass', 'battery staple\n'),
    ]) {
      await assert.rejects(startRelay({ config: configFor(encrypted, passphraseFile), ...quiet }), {
        code: 'PKI_ERR_PASSPHRASE',
      });
    }
    if (process.platform !== 'win32') {
      const readable = file('readable.pass', 'correct horse\n');
      chmodSync(readable, 0o644);
      await assert.rejects(startRelay({ config: configFor(encrypted, readable), ...quiet }), {
        code: 'PKI_ERR_PASSPHRASE',
        message: `${JSON.stringify(readable)} (pki.passphraseFile) is open to group or others (mode 0644)`,
      });
    }
    const started = await startRelay({
      config: configFor(encrypted, file('right.pass', 'correct horse\n')),
      ...quiet,
    });
    await started.close();
  });

  const connect = (agent: EnrolledAgent, port: number) =>
    RelayLink.connect({ url: `wss://127.0.0.1:${port}/v1/agent`, ...agent, connectTimeoutMs: 3000 });

  it('relay - a revocation recorded while the relay was down holds from its first handshake', async () => {
    const revokedAgent = await enrollInProcess(state, 'ot', 'press-1');
    const goodAgent = await enrollInProcess(state, 'ot', 'press-2');
    // What `dmz-pki revoke` does when it cannot unlock the CA key: the store only, no new CRL.
    const store = openPkiStore(state);
    store.revokeCertificates('press-1', 'key lost', new Date());
    store.close();

    relay = await startRelay({
      config: configFor(state),
      audit: createAuditLog(audit.stream),
      log: pino({ level: 'silent' }),
    });
    await assert.rejects(connect(revokedAgent, relay.agentPort));
    await audit.waitFor(
      (entry) => entry.event === 'agent.refused' && entry['detail'] === 'CERT_REVOKED',
      'the revoked agent refused at the handshake',
    );
    const good = await connect(goodAgent, relay.agentPort);
    assert.equal(good.welcome.name, 'press-2');
    await good.close();
  });
});
