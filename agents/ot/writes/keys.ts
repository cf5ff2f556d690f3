/**
 * The Ed25519 public keys of IT agents, as an OT operator pins them: from a PEM (SPKI) or a JWK
 * (RFC 8037 §2, kty OKP, crv Ed25519), reduced to the one form both sides compare, the JWK's
 * public members, and named by their RFC 7638 thumbprint, which a signed command carries as `kid`.
 */
import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

/** An Ed25519 public key as a JWK: exactly the members RFC 7638 §3.2 hashes, in that order. */
export interface PublicJwk {
  readonly crv: 'Ed25519';
  readonly kty: 'OKP';
  readonly x: string;
}

/** A PEM or JWK text of at most this many bytes: an Ed25519 public key's PEM is 113. */
export const MAX_KEY_TEXT_BYTES = 4096;

/**
 * The public key in `text` (PEM) or `jwk` (an object); throws an Error saying what is wrong for a
 * private key, a key of another type, or something that is no key.
 */
export function parsePublicKey(input: string | Record<string, unknown>): PublicJwk {
  let key: KeyObject;
  if (typeof input === 'string') {
    // createPublicKey would quietly derive the public half of a private key: a pinned key file
    // holding the private one is a leak to report, not to use.
    if (input.includes('PRIVATE KEY')) throw new Error('holds a private key; pin the public key only');
    key = createPublicKey(input);
  } else {
    if ('d' in input) throw new Error('holds the private part (d); pin the public key only');
    key = createPublicKey({ key: input as JsonWebKey, format: 'jwk' });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`is a ${key.asymmetricKeyType ?? 'symmetric'} key, not Ed25519`);
  }
  const { x } = key.export({ format: 'jwk' });
  if (typeof x !== 'string') throw new Error('has no public point');
  return { crv: 'Ed25519', kty: 'OKP', x };
}

/** RFC 7638 §3: SHA-256 over the required members, lexically ordered, without whitespace. */
export function jwkThumbprint(jwk: PublicJwk): string {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x });
  return createHash('sha256').update(canonical).digest('base64url');
}

export function publicKeyObject(jwk: PublicJwk): KeyObject {
  return createPublicKey({ key: { ...jwk }, format: 'jwk' });
}
