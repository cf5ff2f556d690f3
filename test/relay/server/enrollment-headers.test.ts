/**
 * The enrollment port's answers carry the API security headers (HSTS, no-store, a CSP that
 * allows nothing, nosniff, no framing, no referrer) on every kind of answer: a refusal, a 404 for a
 * path it does not serve, and a success. Found by the TLS audit (test/system/tls-audit.test.ts),
 * whose testssl.sh rated their absence LOW (HSTS) and MEDIUM (security headers).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createCertificateSigningRequest } from '../../../pki/csr.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair } from '../../../pki/keys.ts';
import { ENROLLMENT_RESPONSE_HEADERS } from '../../../relay/server/enrollment-listener.ts';
import {
  createEnrollmentFixture,
  postToEnrollment,
  type EnrollmentFixture,
  type HttpAnswer,
  type RunningEnrollmentListener,
} from '../../support/enrollment-fixture.ts';

/** Written out, not imported: the test must fail if the listener's table loses one. */
const EXPECTED = {
  'strict-transport-security': 'max-age=31536000',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

describe('enrollment port - API security headers on every answer', () => {
  let fixture: EnrollmentFixture;
  let listener: RunningEnrollmentListener;
  before(async () => {
    fixture = await createEnrollmentFixture();
    listener = await fixture.listen();
  });
  after(async () => {
    await fixture.close();
  });

  function assertHeaders(answer: HttpAnswer, what: string): void {
    for (const [name, value] of Object.entries(EXPECTED)) {
      assert.equal(answer.headers[name], value, `${what}: ${name}`);
    }
  }

  it('the listener sends exactly the expected headers', () => {
    assert.deepEqual({ ...ENROLLMENT_RESPONSE_HEADERS }, EXPECTED);
  });

  it('on a refusal, a 404 and a success', async () => {
    const caPem = fixture.tls.caPem;
    const refused = await postToEnrollment(listener.port, caPem, { token: 'not a token', csr: 'x' });
    assert.ok(refused.status >= 400 && refused.status < 500, `refused: ${refused.status}`);
    assertHeaders(refused, 'a refusal');
    const missing = await postToEnrollment(listener.port, caPem, '', { path: '/', method: 'GET' });
    assert.equal(missing.status, 404);
    assertHeaders(missing, 'a 404');
    const keys = await generateRsaKeyPair(AGENT_KEY_BITS);
    const { token } = await fixture.createToken();
    const csr = createCertificateSigningRequest({ ...keys, commonName: 'press-7' });
    const enrolled = await postToEnrollment(listener.port, caPem, { token, csr });
    assert.equal(enrolled.status, 200);
    assertHeaders(enrolled, 'a success');
  });
});
