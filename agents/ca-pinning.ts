/**
 * First contact with the relay's enrollment port, when the agent trusts nothing but the CA
 * fingerprint in its token (kubeadm's `--discovery-token-ca-cert-hash`, step-ca's `--fingerprint`).
 * The server's chain is checked against that pin after the handshake and before a single byte is
 * written, so the token never reaches an endpoint that could not prove it speaks for the pinned CA.
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect, type DetailedPeerCertificate, type TLSSocket } from 'node:tls';
import { spkiFingerprint } from '../pki/fingerprint.ts';
import { DmzError, ERROR_MESSAGES } from '../relay/protocol/errors.ts';
import { KEY_EXCHANGE_GROUPS, MIN_TLS_VERSION } from '../relay/protocol/limits.ts';

/** RFC 5280 section 4.2.1.12: id-kp-serverAuth. */
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
/** A relay sends its certificate and the CA; a few more is tolerable, a long chain is not ours. */
const MAX_CHAIN_LENGTH = 8;
const HTTPS_DEFAULT_PORT = 443;

export interface PinnedConnection {
  readonly socket: TLSSocket;
  /** The CA certificate whose key matches the pin, as the server sent it. */
  readonly ca: X509Certificate;
}

export interface PinnedEndpoint {
  /** Host name or IP address as it appears in the URL (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
}

/** Where an enrollment URL (`https://` or `wss://`, as tokens carry them) points. */
export function endpointOf(url: URL): PinnedEndpoint {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { host, port: url.port === '' ? HTTPS_DEFAULT_PORT : Number(url.port) };
}

/**
 * Opens TLS to `endpoint` and resolves only once the server has proven it speaks for the pinned
 * CA; otherwise rejects with PKI_ERR_CA_MISMATCH (or PKI_ERR_ENROLLMENT_FAILED when it cannot
 * connect) having written nothing.
 */
export function connectWithPinnedCa(options: {
  endpoint: PinnedEndpoint;
  caFingerprint: string;
  timeoutMs: number;
}): Promise<PinnedConnection> {
  const { endpoint, caFingerprint, timeoutMs } = options;
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: endpoint.host,
      port: endpoint.port,
      ...(isIP(endpoint.host) === 0 ? { servername: endpoint.host } : {}),
      minVersion: MIN_TLS_VERSION,
      ecdhCurve: KEY_EXCHANGE_GROUPS,
      // The one place certificate checks are left to us: Node cannot pin a CA it does not have yet.
      // verifyPinnedChain below checks the chain against the pinned CA before any byte is sent,
      // and nothing is written on this socket unless it passes.
      rejectUnauthorized: false,
    });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)));
    // Kept for the socket's life: an error after we resolve must not go unhandled (reject is then a no-op).
    socket.on('error', (error: Error) => {
      const reason = `could not connect to ${describe(endpoint)}: ${error.message}`;
      reject(new DmzError('PKI_ERR_ENROLLMENT_FAILED', reason, { cause: error }));
    });
    socket.once('secureConnect', () => {
      try {
        const ca = verifyPinnedChain(peerChain(socket), caFingerprint, endpoint.host, new Date());
        socket.setTimeout(0);
        resolve({ socket, ca });
      } catch (error) {
        socket.destroy();
        reject(
          error instanceof DmzError
            ? error
            : new DmzError('PKI_ERR_CA_MISMATCH', undefined, { cause: error }),
        );
      }
    });
  });
}

/**
 * The checks Node would have made with the pinned CA as its only root, and the pin itself:
 * some certificate in the chain has the pinned key and is a valid CA; the leaf is issued and
 * signed by it, is currently valid, is a server certificate (not a CA) and names `host`.
 * TLS 1.3 has already proven the server holds the leaf's key (CertificateVerify, RFC 8446
 * section 4.4.3), which OpenSSL checks whatever `rejectUnauthorized` says. Returns the CA.
 */
export function verifyPinnedChain(
  chain: readonly X509Certificate[],
  caFingerprint: string,
  host: string,
  now: Date,
): X509Certificate {
  const [leaf, ...rest] = chain;
  if (leaf === undefined) mismatch('the server sent no certificate');
  const ca = rest.find((certificate) => spkiFingerprint(certificate.toString()) === caFingerprint);
  if (ca === undefined) mismatch('no certificate in the server chain has the pinned CA key');
  if (!ca.ca) mismatch('the certificate with the pinned key is not a CA certificate');
  // Self-signed by the pinned key: only the CA's holder could have made this certificate.
  if (!ca.verify(ca.publicKey) || !isCurrent(ca, now)) mismatch('the pinned CA certificate is not valid');
  if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) {
    mismatch('the server certificate was not issued by the pinned CA');
  }
  if (!isCurrent(leaf, now)) mismatch('the server certificate is expired or not yet valid');
  if (leaf.ca || !(leaf.keyUsage ?? []).includes(SERVER_AUTH)) {
    mismatch('the server certificate is not a TLS server certificate');
  }
  // RFC 6125 section 6.4.4: names from the SAN only, never the subject CN; no wildcards (ours have none).
  const matches =
    isIP(host) === 0
      ? leaf.checkHost(host, { subject: 'never', wildcards: false }) !== undefined
      : leaf.checkIP(host) !== undefined;
  if (!matches) mismatch(`the server certificate is not for ${host}`);
  return ca;
}

/** The chain as the server sent it, leaf first (Node links it through `issuerCertificate`). */
function peerChain(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let current: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  while (current?.raw !== undefined && chain.length < MAX_CHAIN_LENGTH) {
    chain.push(new X509Certificate(current.raw));
    // A self-signed certificate is its own issuer: the end of the chain.
    if (current.issuerCertificate === current) break;
    current = current.issuerCertificate;
  }
  return chain;
}

function isCurrent(certificate: X509Certificate, now: Date): boolean {
  const time = now.getTime();
  return Date.parse(certificate.validFrom) <= time && time < Date.parse(certificate.validTo);
}

function describe(endpoint: PinnedEndpoint): string {
  return isIP(endpoint.host) === 6
    ? `[${endpoint.host}]:${endpoint.port}`
    : `${endpoint.host}:${endpoint.port}`;
}

function mismatch(reason: string): never {
  throw new DmzError('PKI_ERR_CA_MISMATCH', `${ERROR_MESSAGES.PKI_ERR_CA_MISMATCH} (${reason})`);
}
