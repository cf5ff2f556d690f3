import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { connect as connectTls } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createCertificateSigningRequest, MAX_CSR_BYTES } from '../../../pki/csr.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair, type RsaKeyPair } from '../../../pki/keys.ts';
import { ERROR_MESSAGES, type ErrorCode } from '../../../relay/protocol/errors.ts';
import {
  createEnrollmentFixture,
  postToEnrollment,
  type EnrollmentFixture,
  type HttpAnswer,
  type RunningEnrollmentListener,
} from '../../support/enrollment-fixture.ts';
import type { AuditEntry, AuditRecorder } from '../../support/relay-harness.ts';
import { opensslCertificateText, runOpenssl } from '../../support/test-pki.ts';
import { waitFor } from '../../support/wait.ts';

const HOUR_MS = 3_600_000;

let fixture: EnrollmentFixture;
/** Another relay's state: same trust domain and token issuer name, different keys. */
let other: EnrollmentFixture;
let listener: RunningEnrollmentListener;
let keys: RsaKeyPair;
let csr: string;

before(async () => {
  [fixture, other, keys] = await Promise.all([
    createEnrollmentFixture(),
    createEnrollmentFixture(),
    generateRsaKeyPair(AGENT_KEY_BITS),
  ]);
  csr = createCertificateSigningRequest({ ...keys, commonName: 'press-7' });
  listener = await fixture.listen();
});
after(async () => {
  await Promise.all([fixture.close(), other.close()]);
});

const enroll = (body: unknown, to: RunningEnrollmentListener = listener) =>
  postToEnrollment(to.port, fixture.tls.caPem, body);

/** The answer carries exactly the code and its catalog message: no detail, no echo. */
function assertRefused(answer: HttpAnswer, status: number, code: ErrorCode): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.deepEqual(answer.body, { code, message: ERROR_MESSAGES[code] });
}

/** The refusal's audit entry (recorded after `since` entries): code, address and a reason. */
async function refusalAudited(
  audit: AuditRecorder,
  since: number,
  code: ErrorCode,
  secrets: readonly string[] = [],
): Promise<AuditEntry> {
  const entry = await audit.waitFor(
    (candidate) =>
      audit.entries.indexOf(candidate) >= since &&
      candidate.event === 'enrollment.refused' &&
      candidate.code === code,
    `enrollment.refused ${code}`,
  );
  assert.equal(entry.address, '127.0.0.1');
  assert.equal(typeof entry.reason, 'string');
  assert.ok((entry.reason as string).length > 0);
  const line = JSON.stringify(entry);
  for (const secret of secrets) assert.ok(!line.includes(secret), 'the audit entry echoes the request');
  return entry;
}

/** The CSR with the last byte of its signature flipped: well formed, but no proof of possession. */
function withBrokenSignature(pem: string): string {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  der[der.length - 1] = (der[der.length - 1] ?? 0) ^ 0x01;
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE REQUEST-----\n${lines.join('\n')}\n-----END CERTIFICATE REQUEST-----\n`;
}

/** A CSR made by openssl itself, with whatever `extra` arguments ask for. */
async function opensslCsr(newKey: readonly string[], extra: readonly string[] = []): Promise<string> {
  const result = await runOpenssl([
    'req',
    '-new',
    ...newKey,
    '-nodes',
    '-keyout',
    'key.pem',
    '-subj',
    '/CN=press-7',
    ...extra,
  ]);
  assert.equal(result.exitCode, 0, result.stderr);
  return result.stdout;
}

describe('enrollment listener', () => {
  it('enrolls: 200 with a certificate for the token identity that openssl verifies against the CA', async () => {
    const { token, jti } = await fixture.createToken({ name: 'press-7', role: 'ot' });
    const answer = await enroll({ token, csr });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const body = answer.body as { certificate: string; ca: string };
    assert.deepEqual(Object.keys(body).sort(), ['ca', 'certificate']);
    assert.equal(body.ca, fixture.tls.caPem);

    const verified = await runOpenssl(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslclient', 'cert.pem'], {
      'ca.pem': body.ca,
      'cert.pem': body.certificate,
    });
    assert.equal(verified.exitCode, 0, verified.stderr);
    assert.match(verified.stdout, /cert\.pem: OK/);
    const certificate = new X509Certificate(body.certificate);
    assert.equal(certificate.subjectAltName, 'URI:spiffe://test.dmz/agent/ot/press-7');
    assert.equal(certificate.publicKey.export({ type: 'spki', format: 'pem' }).toString(), keys.publicKeyPem);

    const succeeded = await listener.audit.waitFor(
      (entry) => entry.event === 'enrollment.succeeded' && entry.name === 'press-7',
      'enrollment.succeeded',
    );
    assert.equal(succeeded.role, 'ot');
    assert.equal(succeeded.serial, certificate.serialNumber.toLowerCase());
    assert.equal(succeeded.address, '127.0.0.1');
    assert.equal(fixture.tokenStatus(jti), 'used');
  });

  it('refuses a replayed token with 409 PKI_ERR_TOKEN_USED', async () => {
    const { token } = await fixture.createToken({ name: 'replayed' });
    assert.equal((await enroll({ token, csr })).status, 200);
    const since = listener.audit.entries.length;
    assertRefused(await enroll({ token, csr }), 409, 'PKI_ERR_TOKEN_USED');
    await refusalAudited(listener.audit, since, 'PKI_ERR_TOKEN_USED', [token]);
  });

  it('lets exactly one of 8 parallel redemptions of one token win', async () => {
    const { token } = await fixture.createToken({ name: 'raced' });
    const answers = await Promise.all(Array.from({ length: 8 }, () => enroll({ token, csr })));
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [200, 409, 409, 409, 409, 409, 409, 409]);
    for (const answer of answers.filter((candidate) => candidate.status !== 200)) {
      assertRefused(answer, 409, 'PKI_ERR_TOKEN_USED');
    }
    assert.equal(fixture.state.store.findCertificates('raced').length, 1);
  });

  const TOKEN_REFUSALS: readonly {
    name: string;
    token: () => Promise<string>;
    status: number;
    code: ErrorCode;
  }[] = [
    {
      name: 'an expired token',
      token: async () =>
        (await fixture.createToken({ now: new Date(Date.now() - 2 * HOUR_MS), ttlSeconds: 3600 })).token,
      status: 401,
      code: 'PKI_ERR_TOKEN_EXPIRED',
    },
    {
      name: 'a tampered token (payload edited, signature kept)',
      token: async () => {
        const [header, payload, signature] = (await fixture.createToken({ name: 'tampered' })).token.split(
          '.',
        );
        const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
        const edited = Buffer.from(JSON.stringify({ ...claims, role: 'it' })).toString('base64url');
        return [header, edited, signature].join('.');
      },
      status: 401,
      code: 'PKI_ERR_TOKEN_INVALID',
    },
    {
      name: "a token signed by another relay's key (same issuer name, our CA pin)",
      token: async () => (await fixture.createToken({ signingKeyPem: other.tokenSigningKeyPem })).token,
      status: 401,
      code: 'PKI_ERR_TOKEN_INVALID',
    },
    {
      name: 'a token of ours pinning another CA',
      token: async () => (await fixture.createToken({ caFingerprint: other.state.caFingerprint })).token,
      status: 401,
      code: 'PKI_ERR_TOKEN_INVALID',
    },
    {
      name: 'a token the store never recorded',
      token: async () => (await fixture.createToken({ record: false })).token,
      status: 401,
      code: 'PKI_ERR_TOKEN_UNKNOWN',
    },
    {
      name: 'a revoked token',
      token: async () => {
        const { token, jti } = await fixture.createToken({ name: 'revoked' });
        fixture.state.store.revokeToken(jti);
        return token;
      },
      status: 409,
      code: 'PKI_ERR_TOKEN_REVOKED',
    },
  ];
  for (const refusal of TOKEN_REFUSALS) {
    it(`refuses ${refusal.name} with ${refusal.status} ${refusal.code}, detail only in the audit log`, async () => {
      const token = await refusal.token();
      const since = listener.audit.entries.length;
      assertRefused(await enroll({ token, csr }), refusal.status, refusal.code);
      await refusalAudited(listener.audit, since, refusal.code, [token]);
    });
  }

  const REQUEST_REFUSALS: readonly {
    name: string;
    /** The request body for a fresh, valid token. */
    body: (token: string) => Promise<unknown>;
    headers?: Record<string, string>;
    status: number;
    code: ErrorCode;
  }[] = [
    {
      name: 'garbage for a CSR',
      body: (token) => Promise.resolve({ token, csr: 'not a csr' }),
      status: 400,
      code: 'PKI_ERR_CSR_INVALID',
    },
    {
      name: 'a CSR for an EC key',
      body: async (token) => ({
        token,
        csr: await opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
      }),
      status: 400,
      code: 'PKI_ERR_CSR_KEY',
    },
    {
      name: 'a CSR for an RSA-1024 key',
      body: async (token) => ({ token, csr: await opensslCsr(['-newkey', 'rsa:1024']) }),
      status: 400,
      code: 'PKI_ERR_CSR_KEY',
    },
    {
      name: 'a CSR whose signature does not verify',
      body: (token) => Promise.resolve({ token, csr: withBrokenSignature(csr) }),
      status: 400,
      code: 'PKI_ERR_CSR_SIGNATURE',
    },
    {
      name: 'a CSR longer than MAX_CSR_BYTES',
      body: (token) => Promise.resolve({ token, csr: 'A'.repeat(MAX_CSR_BYTES + 1) }),
      status: 400,
      code: 'PKI_ERR_REQUEST_INVALID',
    },
    {
      name: 'a body without a CSR',
      body: (token) => Promise.resolve({ token }),
      status: 400,
      code: 'PKI_ERR_REQUEST_INVALID',
    },
    {
      name: 'a body with an extra field',
      body: (token) => Promise.resolve({ token, csr, name: 'root' }),
      status: 400,
      code: 'PKI_ERR_REQUEST_INVALID',
    },
    {
      name: 'a token that is not a string',
      body: () => Promise.resolve({ token: 12345, csr }),
      status: 400,
      code: 'PKI_ERR_REQUEST_INVALID',
    },
    {
      name: 'a body that is not JSON',
      body: (token) => Promise.resolve(`{"token": "${token}", "csr": `),
      status: 400,
      code: 'PKI_ERR_REQUEST_INVALID',
    },
    {
      name: 'a body that is not application/json',
      body: (token) => Promise.resolve(`token=${token}`),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      status: 400,
      code: 'PKI_ERR_REQUEST_INVALID',
    },
    {
      name: 'a 1 MB body',
      body: (token) => Promise.resolve({ token, csr: 'A'.repeat(1024 * 1024) }),
      status: 413,
      code: 'PKI_ERR_REQUEST_TOO_LARGE',
    },
  ];
  for (const refusal of REQUEST_REFUSALS) {
    it(`refuses ${refusal.name} with ${refusal.status} ${refusal.code}; the token stays unspent`, async () => {
      const { token, jti } = await fixture.createToken({ name: 'malformed' });
      const body = await refusal.body(token);
      const since = listener.audit.entries.length;
      const answer = await postToEnrollment(listener.port, fixture.tls.caPem, body, {
        ...(refusal.headers === undefined ? {} : { headers: refusal.headers }),
      });
      assertRefused(answer, refusal.status, refusal.code);
      await refusalAudited(listener.audit, since, refusal.code, [token]);
      assert.equal(fixture.tokenStatus(jti), 'active');
    });
  }

  it('issues from its template only: a CSR asking for CA:TRUE, extra SANs and serverAuth gets none of it', async () => {
    const { token } = await fixture.createToken({ name: 'greedy' });
    const greedy = await opensslCsr(
      ['-newkey', 'rsa:2048'],
      [
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'subjectAltName=DNS:relay.example,IP:10.0.0.1,URI:spiffe://test.dmz/agent/it/admin',
        '-addext',
        'extendedKeyUsage=serverAuth,clientAuth',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      ],
    );
    const answer = await enroll({ token, csr: greedy });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const { extensions, text } = await opensslCertificateText(
      (answer.body as { certificate: string }).certificate,
    );
    assert.equal(extensions.get('X509v3 Basic Constraints')?.value, 'CA:FALSE');
    assert.equal(
      extensions.get('X509v3 Subject Alternative Name')?.value,
      'URI:spiffe://test.dmz/agent/ot/greedy',
    );
    assert.equal(extensions.get('X509v3 Extended Key Usage')?.value, 'TLS Web Client Authentication');
    assert.equal(extensions.get('X509v3 Key Usage')?.value, 'Digital Signature');
    assert.doesNotMatch(
      text,
      /relay\.example|10\.0\.0\.1|agent\/it\/admin|Server Authentication|Certificate Sign/,
    );
  });

  it('answers an unexpected failure with 500 PKI_ERR_ENROLLMENT_FAILED; the detail goes to the audit log only', async () => {
    const failing = await fixture.listen({
      issuer: { enroll: () => Promise.reject(new Error('pki.db: disk I/O error')) },
    });
    const { token } = await fixture.createToken({ name: 'unlucky' });
    const answer = await enroll({ token, csr }, failing);
    assertRefused(answer, 500, 'PKI_ERR_ENROLLMENT_FAILED');
    const entry = await refusalAudited(failing.audit, 0, 'PKI_ERR_ENROLLMENT_FAILED', [token]);
    assert.match(entry.reason as string, /disk I\/O error/);
    await failing.listener.close();
  });

  it('closing the port while an enrollment is in flight still answers it 200', async () => {
    let entered: () => void = () => undefined;
    const inIssuer = new Promise<void>((resolve) => {
      entered = resolve;
    });
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const closing = await fixture.listen({
      issuer: {
        async enroll(token, csrPem) {
          entered();
          await released;
          return fixture.issuer.enroll(token, csrPem);
        },
      },
    });
    const { token, jti } = await fixture.createToken({ name: 'last-token' });
    const answering = enroll({ token, csr }, closing);
    await inIssuer;
    // As upkeep closes the port in auto mode once this very enrollment spent the last token.
    const closed = closing.listener.close();
    await waitFor(() => !closing.listener.app.server.listening, 'enrollment port closed');
    release();
    const answer = await answering;
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.ok(new X509Certificate((answer.body as { certificate: string }).certificate));
    assert.equal(fixture.tokenStatus(jti), 'used');
    await closed;
  });

  it('answers anything but POST /v1/enroll with an empty 404, unaudited', async () => {
    const since = listener.audit.entries.length;
    const probes = await Promise.all([
      postToEnrollment(listener.port, fixture.tls.caPem, '', { method: 'GET' }),
      postToEnrollment(listener.port, fixture.tls.caPem, {}, { path: '/v1/agent' }),
      postToEnrollment(listener.port, fixture.tls.caPem, {}, { path: '/v1/enroll/', method: 'PUT' }),
    ]);
    for (const probe of probes) {
      assert.equal(probe.status, 404);
      assert.equal(probe.body, '');
    }
    assert.equal(listener.audit.entries.length, since);
  });
});

describe('enrollment listener - rate limits', () => {
  const LIMITS: readonly { scope: string; limits: { perAddressPerMinute: number; perMinute: number } }[] = [
    { scope: 'per-address', limits: { perAddressPerMinute: 2, perMinute: 100 } },
    { scope: 'global', limits: { perAddressPerMinute: 100, perMinute: 2 } },
  ];
  for (const { scope, limits } of LIMITS) {
    it(`${scope}: the third attempt in a minute gets 429 before its body is even parsed`, async () => {
      const limited = await fixture.listen({ limits });
      // Garbage bodies: answered 400 while allowed, so a 429 shows the limit ran before parsing.
      for (let attempt = 0; attempt < 2; attempt += 1) {
        assertRefused(await enroll('not json', limited), 400, 'PKI_ERR_REQUEST_INVALID');
      }
      const refused = await enroll('not json', limited);
      assertRefused(refused, 429, 'PKI_ERR_RATE_LIMITED');
      assert.ok(Number(refused.headers['retry-after']) >= 1);
      const entry = await refusalAudited(limited.audit, 0, 'PKI_ERR_RATE_LIMITED');
      assert.match(entry.reason as string, new RegExp(scope));
      // A flood is audited once per window, not once per request.
      assertRefused(await enroll('not json', limited), 429, 'PKI_ERR_RATE_LIMITED');
      const audited = limited.audit.entries.filter((candidate) => candidate.code === 'PKI_ERR_RATE_LIMITED');
      assert.equal(audited.length, 1);
      await limited.listener.close();
    });
  }

  it('per-address connections: the 4th TCP connection in a minute (perAddressPerMinute 1) is dropped before TLS completes', async () => {
    const limited = await fixture.listen({ limits: { perAddressPerMinute: 1, perMinute: 100 } });
    for (let attempt = 0; attempt < 3; attempt += 1) {
      assert.equal(await tlsHandshake(limited.port, fixture.tls.caPem), 'established');
    }
    assert.notEqual(await tlsHandshake(limited.port, fixture.tls.caPem), 'established');
    const entry = await refusalAudited(limited.audit, 0, 'PKI_ERR_RATE_LIMITED');
    assert.match(entry.reason as string, /connection/);
    // A flood is audited once per window, not once per connection.
    assert.notEqual(await tlsHandshake(limited.port, fixture.tls.caPem), 'established');
    const audited = limited.audit.entries.filter((candidate) => candidate.code === 'PKI_ERR_RATE_LIMITED');
    assert.equal(audited.length, 1);
    await limited.listener.close();
  });
});

/** A TLS handshake with the port, verified against the CA: 'established', or why it failed. */
function tlsHandshake(port: number, caPem: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTls({ host: '127.0.0.1', port, ca: caPem }, () => {
      socket.destroy();
      resolve('established');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    socket.once('close', () => resolve('closed'));
  });
}
