/**
 * Who is on the other end of a TLS connection, from the verified certificate only. OpenSSL has
 * already checked the chain to our CA, validity dates and the CRL; this adds what it cannot know:
 * the certificate must be an agent certificate (not a CA, made for client authentication) and
 * carry exactly one well-formed identity of our trust domain. A resumed TLS session (a ticket,
 * session-tickets.ts) carries the certificate of its full handshake, checked then; OpenSSL checks
 * neither the CRL nor the validity dates again, so both are checked here for every connection.
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
  now: number = Date.now(),
): VerifiedPeer {
  if (!socket.authorized) throw new DmzError('RELAY_ERR_IDENTITY', 'client certificate not verified');
  const certificate: X509Certificate | undefined = socket.getPeerX509Certificate();
  if (certificate === undefined) throw new DmzError('RELAY_ERR_IDENTITY', 'no client certificate');
  if (certificate.ca) throw new DmzError('RELAY_ERR_IDENTITY', 'a CA certificate cannot identify an agent');
  const extendedKeyUsage = certificate.keyUsage as string[] | undefined;
  if (extendedKeyUsage === undefined || !extendedKeyUsage.includes(CLIENT_AUTH_OID)) {
    throw new DmzError('RELAY_ERR_IDENTITY', 'certificate is not for client authentication');
  }
  // A full handshake checked the dates moments ago; a resumed one, perhaps a day ago.
  if (!(Date.parse(certificate.validFrom) <= now && now <= Date.parse(certificate.validTo))) {
    throw new DmzError('RELAY_ERR_IDENTITY', 'certificate is not valid now');
  }
  const serialHex = normalizeSerialHex(certificate.serialNumber);
  // OpenSSL checks the CRL at a full handshake only; this covers a resumed TLS session too.
  if (revoked.has(serialHex)) throw new DmzError('RELAY_ERR_REVOKED');
  return { identity: identityFromSubjectAltName(certificate.subjectAltName, trustDomain), serialHex };
}
