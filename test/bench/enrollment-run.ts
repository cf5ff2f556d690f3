/**
 * `npm run bench:enrollment`: enrollments per second the relay sustains, which is bounded by what
 * each enrollment costs it: TLS handshake, token check, CSR check, the atomic token consumption
 * (a durable SQLite write) and an RSA signature by a 3072-bit CA key, then the certificate's
 * record. The reference measured in the same run is the bare RSA-3072 signing rate of one core.
 *
 * The relay is the production `dmz-relay` process; the clients run the agent's own enrollment code
 * (CA pinning, then the POST), all on loopback, bounded in count and time.
 */
import { sign } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectWithPinnedCa } from '../../agents/ca-pinning.ts';
import { exchangeEnrollment } from '../../agents/enrollment-exchange.ts';
import { createCertificateSigningRequest } from '../../pki/csr.ts';
import { AGENT_KEY_BITS, CA_KEY_BITS, generateRsaKeyPair } from '../../pki/keys.ts';
import { initializeState, openState } from '../../pki/state.ts';
import { createEnrollmentToken } from '../../pki/tokens.ts';
import { freePort } from '../support/ports.ts';

/** Enough enrollments for a steady rate; few enough that the run stays well under a minute. */
const ENROLLMENTS = 300;
/** Agents enrolling at once: a plant commissioning a line, not one agent at a time. */
const CONCURRENCY = 16;
const TIME_LIMIT_MS = 60_000;
const SIGNING_SAMPLES = 300;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dmz-bench-enroll-'));
  const stateDir = join(dir, 'state');
  const [agentPort, enrollPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  await initializeState({
    stateDir,
    trustDomain: 'bench.plant',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    enrollmentUrls: [],
  });
  const config = join(dir, 'relay.yaml');
  await writeFile(
    config,
    `trustDomain: bench.plant
state: ./state
listen:
  agents: { host: 127.0.0.1, port: ${agentPort} }
  enrollment: { host: 127.0.0.1, port: ${enrollPort}, mode: on }
  admin: { host: 127.0.0.1, port: ${adminPort} }
limits: { enrollmentsPerMinutePerAddress: 1000000, enrollmentsPerMinute: 1000000, enrollmentConnectionsPerAddress: 64 }
log: { level: warn, audit: ./audit.log }
policy: [{ role: ot }]
`,
  );
  const relay = spawn(
    process.execPath,
    [join(import.meta.dirname, '..', '..', 'bin', 'dmz-relay.js'), '--config', config],
    {
      stdio: ['pipe', 'ignore', 'inherit'],
    },
  );
  try {
    const state = await openState(stateDir);
    const signingKeyPem = await state.loadTokenSigningKey();
    const tokens: string[] = [];
    for (let i = 0; i < ENROLLMENTS; i++) {
      const created = await createEnrollmentToken({
        signingKeyPem,
        issuer: state.tokenIssuer,
        name: `agent-${i}`,
        role: 'ot',
        ttlSeconds: 3600,
        urls: [`https://127.0.0.1:${enrollPort}`],
        caFingerprint: state.caFingerprint,
      });
      state.store.recordToken({
        jti: created.jti,
        name: `agent-${i}`,
        role: 'ot',
        createdAt: new Date(),
        expiresAt: created.expiresAt,
      });
      tokens.push(created.token);
    }
    const caFingerprint = state.caFingerprint;
    state.close();
    // One key and CSR for every enrollment: key generation is the agent's cost, not the relay's.
    const keys = await generateRsaKeyPair(AGENT_KEY_BITS);
    const csr = createCertificateSigningRequest({ ...keys, commonName: 'bench' });
    const endpoint = { host: '127.0.0.1', port: enrollPort };
    await waitForListener(() =>
      connectWithPinnedCa({ endpoint, caFingerprint, timeoutMs: 2000 }).then((c) => c.socket.destroy()),
    );

    const enrollOne = async (token: string) => {
      const connection = await connectWithPinnedCa({ endpoint, caFingerprint, timeoutMs: 10_000 });
      await exchangeEnrollment({ connection, endpoint, body: { token, csr }, timeoutMs: 10_000 });
    };
    // Warm-up (JIT, SQLite page cache), not counted.
    for (const token of tokens.splice(0, CONCURRENCY)) await enrollOne(token);
    const started = process.hrtime.bigint();
    const deadline = Date.now() + TIME_LIMIT_MS;
    let done = 0;
    const worker = async () => {
      for (let token = tokens.pop(); token !== undefined && Date.now() < deadline; token = tokens.pop()) {
        await enrollOne(token);
        done++;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const enrollmentsPerSecond = done / seconds;

    const ca = await generateRsaKeyPair(CA_KEY_BITS);
    const tbs = Buffer.alloc(1200, 7); // about the size of an agent certificate's TBS
    const signStarted = process.hrtime.bigint();
    for (let i = 0; i < SIGNING_SAMPLES; i++) sign('sha256', tbs, ca.privateKeyPem);
    const signsPerSecond = SIGNING_SAMPLES / (Number(process.hrtime.bigint() - signStarted) / 1e9);

    process.stdout.write(
      [
        'enrollment (production dmz-relay, RSA-3072 CA, 16 agents at once, loopback):',
        `  enrollments:               ${done} in ${seconds.toFixed(2)} s`,
        `  enrollments per second:    ${enrollmentsPerSecond.toFixed(0)}`,
        `  RSA-3072 signatures/s:     ${signsPerSecond.toFixed(0)} (one core, node:crypto, same run)`,
        `  ratio enrollments/signing: ${(enrollmentsPerSecond / signsPerSecond).toFixed(2)}`,
        '',
      ].join('\n'),
    );
  } finally {
    relay.kill('SIGTERM');
    await new Promise((resolve) => relay.once('exit', resolve));
    await rm(dir, { recursive: true, force: true });
  }
}

async function waitForListener(probe: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await probe();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench:enrollment failed: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exitCode = 1;
});
