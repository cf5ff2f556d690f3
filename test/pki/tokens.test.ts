import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SignJWT, importPKCS8 } from 'jose';
import type { JWTPayload } from 'jose';
import {
  DEFAULT_TOKEN_TTL_SECONDS,
  ENROLLMENT_TOKEN_AUDIENCE,
  ENROLLMENT_TOKEN_TYPE,
  MAX_TOKEN_TTL_SECONDS,
  MIN_TOKEN_TTL_SECONDS,
  createEnrollmentToken,
  generateTokenSigningKey,
  readEnrollmentTokenUnverified,
  verifyEnrollmentToken,
} from '../../pki/tokens.ts';
import type { CreateEnrollmentTokenOptions } from '../../pki/tokens.ts';
import type { Role } from '../../relay/protocol/identity.ts';

const ISSUER = 'dmz-relay.plant-a.example';
const CA = `sha256:${'ab'.repeat(32)}`;
const NOW = new Date('2030-01-01T00:00:00Z');
const NOW_S = NOW.getTime() / 1000;
const relayKey = await generateTokenSigningKey();
const otherKey = await generateTokenSigningKey();

function options(overrides: Partial<CreateEnrollmentTokenOptions> = {}): CreateEnrollmentTokenOptions {
  return {
    signingKeyPem: relayKey.privateKeyPem,
    issuer: ISSUER,
    name: 'plc-gateway-1',
    role: 'ot',
    ttlSeconds: DEFAULT_TOKEN_TTL_SECONDS,
    urls: ['wss://relay.plant-a.example:8443/enroll'],
    caFingerprint: CA,
    now: NOW,
    ...overrides,
  };
}

const verify = (token: string, now = NOW) =>
  verifyEnrollmentToken(token, { publicKeyPem: relayKey.publicKeyPem, issuer: ISSUER, now });

/** A well-formed claim set, for tokens the tests sign by hand with odd headers or claims. */
function claims(overrides: JWTPayload = {}): JWTPayload {
  return {
    iss: ISSUER,
    aud: ENROLLMENT_TOKEN_AUDIENCE,
    jti: 'AAAAAAAAAAAAAAAAAAAAAA',
    iat: NOW_S,
    exp: NOW_S + 3600,
    sub: 'plc-gateway-1',
    role: 'ot',
    urls: ['wss://relay.plant-a.example/enroll'],
    ca: CA,
    ...overrides,
  };
}

function claimsWithout(claim: string): JWTPayload {
  return Object.fromEntries(Object.entries(claims()).filter(([key]) => key !== claim));
}

async function signByHand(payload: JWTPayload, typ = ENROLLMENT_TOKEN_TYPE, pem = relayKey.privateKeyPem) {
  const key = await importPKCS8(pem, 'EdDSA');
  return new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', typ }).sign(key);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function withPayloadSegment(token: string, edit: (segment: string) => string): string {
  const [header, payload, signature] = token.split('.');
  return [header, edit(payload!), signature].join('.');
}

describe('enrollment tokens', () => {
  it('round-trips: relay verifies, agent reads the same claims', async () => {
    const { token, jti, expiresAt } = await createEnrollmentToken(options());
    assert.match(jti, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(expiresAt.getTime(), NOW.getTime() + DEFAULT_TOKEN_TTL_SECONDS * 1000);
    const expected = {
      jti,
      name: 'plc-gateway-1',
      role: 'ot',
      urls: ['wss://relay.plant-a.example:8443/enroll'],
      caFingerprint: CA,
      expiresAt,
    };
    assert.deepEqual(await verify(token), expected);
    assert.deepEqual(readEnrollmentTokenUnverified(token), expected);
  });

  it('gives every token a fresh jti', async () => {
    const [a, b] = await Promise.all([createEnrollmentToken(options()), createEnrollmentToken(options())]);
    assert.notEqual(a.jti, b.jti);
  });

  it('expires at exp exactly, with no clock tolerance', async () => {
    const { token, expiresAt } = await createEnrollmentToken(options({ ttlSeconds: MIN_TOKEN_TTL_SECONDS }));
    await verify(token, new Date(expiresAt.getTime() - 1000));
    await assert.rejects(verify(token, expiresAt), { code: 'PKI_ERR_TOKEN_EXPIRED' });
  });

  it('accepts iat up to 60 s in the future, refuses beyond', async () => {
    const { token } = await createEnrollmentToken(options());
    await verify(token, new Date(NOW.getTime() - 60_000));
    await assert.rejects(verify(token, new Date(NOW.getTime() - 61_000)), { code: 'PKI_ERR_TOKEN_INVALID' });
  });

  const forgeries: { name: string; make: () => Promise<string> }[] = [
    {
      name: 'payload with one character flipped',
      make: async () =>
        withPayloadSegment((await createEnrollmentToken(options())).token, (segment) => {
          const at = Math.floor(segment.length / 2);
          return segment.slice(0, at) + (segment[at] === 'A' ? 'B' : 'A') + segment.slice(at + 1);
        }),
    },
    {
      name: 'payload re-encoded with role escalated ot -> it',
      make: async () =>
        withPayloadSegment((await createEnrollmentToken(options())).token, (segment) =>
          b64({ ...(JSON.parse(Buffer.from(segment, 'base64url').toString()) as object), role: 'it' }),
        ),
    },
    {
      name: 'signed by another key',
      make: async () =>
        (await createEnrollmentToken(options({ signingKeyPem: otherKey.privateKeyPem }))).token,
    },
    {
      name: 'alg none',
      make: () => Promise.resolve(`${b64({ alg: 'none', typ: ENROLLMENT_TOKEN_TYPE })}.${b64(claims())}.`),
    },
    {
      name: 'HS256 keyed with the public key PEM (algorithm confusion, RFC 8725 section 2.1)',
      make: () =>
        new SignJWT(claims())
          .setProtectedHeader({ alg: 'HS256', typ: ENROLLMENT_TOKEN_TYPE })
          .sign(new TextEncoder().encode(relayKey.publicKeyPem)),
    },
    { name: 'typ JWT (explicit typing, RFC 8725 section 3.11)', make: () => signByHand(claims(), 'JWT') },
    { name: 'no typ', make: () => signByHand(claims(), '') },
    { name: 'another audience', make: () => signByHand(claims({ aud: 'dmz-relay-api' })) },
    { name: 'another issuer', make: () => signByHand(claims({ iss: 'someone-else' })) },
    { name: 'no jti', make: () => signByHand(claimsWithout('jti')) },
    {
      name: 'lifetime above the maximum',
      make: () => signByHand(claims({ exp: NOW_S + MAX_TOKEN_TTL_SECONDS + 1 })),
    },
    { name: 'http:// enrollment URL', make: () => signByHand(claims({ urls: ['http://relay.example/'] })) },
    { name: 'malformed CA pin', make: () => signByHand(claims({ ca: 'sha1:abcd' })) },
    { name: 'role admin', make: () => signByHand(claims({ role: 'admin' })) },
    { name: 'garbage', make: () => Promise.resolve('not-a-jwt') },
    { name: 'three empty segments', make: () => Promise.resolve('..') },
    { name: 'empty string', make: () => Promise.resolve('') },
    { name: 'oversized', make: () => Promise.resolve(`${'a'.repeat(5000)}.b.c`) },
  ];

  for (const { name, make } of forgeries) {
    it(`relay refuses a token: ${name}`, async () => {
      await assert.rejects(verify(await make()), { code: 'PKI_ERR_TOKEN_INVALID' });
    });
  }

  it('keeps the jose error as cause for the log', async () => {
    const token = (await createEnrollmentToken(options({ signingKeyPem: otherKey.privateKeyPem }))).token;
    await assert.rejects(verify(token), (err: Error) => {
      assert.equal((err.cause as { code?: string }).code, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
      return true;
    });
  });

  const unreadable: { name: string; token: () => Promise<string> }[] = [
    { name: 'garbage', token: () => Promise.resolve('garbage') },
    { name: 'typ JWT', token: () => signByHand(claims(), 'JWT') },
    { name: 'http:// enrollment URL', token: () => signByHand(claims({ urls: ['http://relay.example/'] })) },
    { name: 'URL with credentials', token: () => signByHand(claims({ urls: ['wss://u:p@relay.example/'] })) },
    { name: 'no URLs', token: () => signByHand(claims({ urls: [] })) },
    { name: 'bad agent name', token: () => signByHand(claims({ sub: 'PLC_1' })) },
    { name: 'another audience', token: () => signByHand(claims({ aud: 'x' })) },
  ];

  for (const { name, token } of unreadable) {
    it(`agent refuses to read a token: ${name}`, async () => {
      const value = await token();
      assert.throws(() => readEnrollmentTokenUnverified(value), { code: 'PKI_ERR_TOKEN_INVALID' });
    });
  }

  const badInputs: { name: string; overrides: Partial<CreateEnrollmentTokenOptions> }[] = [
    { name: 'upper-case name', overrides: { name: 'PLC-1' } },
    { name: 'name with underscore', overrides: { name: 'plc_1' } },
    { name: 'empty name', overrides: { name: '' } },
    { name: 'name starting with a dash', overrides: { name: '-plc' } },
    { name: 'role admin', overrides: { role: 'admin' as Role } },
    { name: 'ttl below minimum', overrides: { ttlSeconds: MIN_TOKEN_TTL_SECONDS - 1 } },
    { name: 'ttl above maximum', overrides: { ttlSeconds: MAX_TOKEN_TTL_SECONDS + 1 } },
    { name: 'fractional ttl', overrides: { ttlSeconds: 90.5 } },
    { name: 'NaN ttl', overrides: { ttlSeconds: Number.NaN } },
    { name: 'no URLs', overrides: { urls: [] } },
    { name: 'http URL', overrides: { urls: ['http://relay.example/'] } },
    { name: 'URL with fragment', overrides: { urls: ['https://relay.example/#x'] } },
    { name: 'nine URLs', overrides: { urls: Array.from({ length: 9 }, (_, i) => `wss://r${i}.example/`) } },
    { name: 'CA pin in upper case', overrides: { caFingerprint: CA.toUpperCase() } },
    { name: 'CA pin too short', overrides: { caFingerprint: 'sha256:abcd' } },
    { name: 'empty issuer', overrides: { issuer: '' } },
  ];

  for (const { name, overrides } of badInputs) {
    it(`refuses to create a token: ${name}`, async () => {
      await assert.rejects(createEnrollmentToken(options(overrides)), { code: 'PKI_ERR_TOKEN_INVALID' });
    });
  }
});
