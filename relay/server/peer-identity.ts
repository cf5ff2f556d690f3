/**
 * Who is on the other end of a TLS connection, from the verified certificate only. OpenSSL has
 * already checked the chain to our CA, validity dates and the CRL; this adds what it cannot know:
 * the certificate must be an agent certificate (not a CA, made for client authentication) and
 * carry exactly one well-formed identity of our trust domain.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { normalizeSerialHex } from '../../pki/serial.ts';
import { DmzError } from '../protocol/errors.ts';
import { identityFromSubjectAltName, type AgentIdentity } from '../protocol/identity.ts';

/** id-kp-clientAuth (RFC 5280 section 4.2.1.12). */
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';

export interface VerifiedPeer {
  readonly identity: AgentIdentity;
  /** Lower-case hex without leading zeros stripped, as the CA records it. */
  readonly serialHex: string;
}

export function verifyPeer(
  socket: TLSSocket,
  trustDomain: string,
  revoked: ReadonlySet<string>,
): VerifiedPeer {
  if (!socket.authorized) throw new DmzError('RELAY_ERR_IDENTITY', 'client certificate not verified');
  const certificate: X509Certificate | undefined = socket.getPeerX509Certificate();
  if (certificate === undefined) throw new DmzError('RELAY_ERR_IDENTITY', 'no client certificate');
  if (certificate.ca) throw new DmzError('RELAY_ERR_IDENTITY', 'a CA certificate cannot identify an agent');
  const extendedKeyUsage = certificate.keyUsage as string[] | undefined;
  if (extendedKeyUsage === undefined || !extendedKeyUsage.includes(CLIENT_AUTH_OID)) {
    throw new DmzError('RELAY_ERR_IDENTITY', 'certificate is not for client authentication');
  }
  const serialHex = normalizeSerialHex(certificate.serialNumber);
  // OpenSSL checks the CRL at the handshake; this also covers a resumed TLS session.
  if (revoked.has(serialHex)) throw new DmzError('RELAY_ERR_REVOKED');
  return { identity: identityFromSubjectAltName(certificate.subjectAltName, trustDomain), serialHex };
}
