/**
 * The OPC UA client's own PKI: its key and self-signed application certificate, and the trust
 * lists that decide which servers it talks to, in `<source state>/pki` (node-opcua's layout: own/,
 * trusted/, rejected/, issuers/), never in $HOME. Made by the agent on first use. Nothing is
 * trusted automatically: a server certificate gets into trusted/ only from a configured file or
 * from `dmz-agent opcua trust` with the fingerprint the operator checked.
 */
// First: node-opcua's messages are routed before it loads.
import './library-log.ts';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { OPCUACertificateManager, StatusCodes } from 'node-opcua';
import { PRIVATE_DIRECTORY_MODE } from '../../../../relay/protocol/file-permissions.ts';
import { describeCertificate, readCertificateFile, type CertificateDescription } from './certificates.ts';

export const PKI_DIRECTORY = 'pki';
/** Where node-opcua's client looks for its certificate by default; the path is ours to keep. */
const CLIENT_CERTIFICATE = join('own', 'certs', 'client_certificate.pem');
/**
 * The client certificate's lifetime. Every OPC UA server it talks to trusts it by hand, so a
 * renewal is an operator's visit to each server: 5 years, as OPC UA tools commonly make them.
 */
const CLIENT_CERTIFICATE_DAYS = 5 * 365;
/** RSA 2048: what Basic256Sha256 and both newer RSA policies take at minimum (Part 7). */
const CLIENT_KEY_BITS = 2048;

export interface ClientPki {
  readonly manager: OPCUACertificateManager;
  readonly rootDir: string;
  readonly certificateFile: string;
  readonly privateKeyFile: string;
  /** `urn:dmz-agent:<agent>:<source>`: in the certificate's subjectAltName and every session. */
  readonly applicationUri: string;
}

export interface ClientIdentity {
  readonly agentName: string;
  readonly sourceName: string;
}

/** Opens (creating it on first use) the PKI of one source's client under `stateDir`. */
export async function openClientPki(stateDir: string, identity: ClientIdentity): Promise<ClientPki> {
  const rootDir = join(stateDir, PKI_DIRECTORY);
  await mkdir(rootDir, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
  const manager = new OPCUACertificateManager({
    rootFolder: rootDir,
    automaticallyAcceptUnknownCertificate: false,
    // The trust lists are read again before every connection attempt (reloadTrust): no watchers,
    // whose file handles would grow with every source.
    disableFileWatchers: true,
    keySize: CLIENT_KEY_BITS,
    name: `${identity.agentName}.${identity.sourceName}`,
  });
  await manager.initialize();
  const certificateFile = join(rootDir, CLIENT_CERTIFICATE);
  // A certificate made before keeps its URI (servers trust it by that name): only a new one takes
  // the agent's current name.
  const applicationUri = existsSync(certificateFile)
    ? (describeCertificate(readCertificateFile(certificateFile)).applicationUri ?? defaultUri(identity))
    : defaultUri(identity);
  if (!existsSync(certificateFile)) {
    await manager.createSelfSignedCertificate({
      applicationUri,
      dns: [hostname()],
      subject: `/CN=${identity.agentName}.${identity.sourceName}/O=dmz-agent`,
      startDate: new Date(),
      validity: CLIENT_CERTIFICATE_DAYS,
      outputFile: certificateFile,
    });
  }
  return { manager, rootDir, certificateFile, privateKeyFile: manager.privateKey, applicationUri };
}

function defaultUri(identity: ClientIdentity): string {
  return `urn:dmz-agent:${identity.agentName}:${identity.sourceName}`;
}

/** Rescans trusted/ and rejected/: a `dmz-agent opcua trust` since the last attempt counts. */
export async function reloadTrust(pki: ClientPki): Promise<void> {
  await pki.manager.reloadCertificates();
}

/**
 * Undefined when the server certificate chain (leaf first) is trusted and valid now; otherwise the
 * StatusCode name (`BadCertificateUntrusted`, `BadCertificateTimeInvalid`, ...). An unknown
 * certificate is filed in rejected/, where `dmz-agent opcua trust` can be pointed at it.
 */
export async function verifyServerCertificate(
  pki: ClientPki,
  chain: readonly Buffer[],
): Promise<string | undefined> {
  const status = await pki.manager.checkCertificate([...chain]);
  return status.equals(StatusCodes.Good) ? undefined : status.name;
}

export async function trustServerCertificate(pki: ClientPki, leaf: Buffer): Promise<void> {
  await pki.manager.trustCertificate(leaf);
}

/** What the server's operator checks before trusting this client (its file is certificateFile). */
export function describeClientCertificate(pki: ClientPki): CertificateDescription {
  return describeCertificate(readCertificateFile(pki.certificateFile));
}

export async function closeClientPki(pki: ClientPki): Promise<void> {
  await pki.manager.dispose();
}
