/**
 * A throwaway PKI per test run: a CA, the relay's server certificate, agent credentials, a live CRL,
 * and hostile credentials for refusal tests. Built with the production pki/ modules (so tests
 * exercise what ships), except the hostile certificates the production template must never be able
 * to make, which are built here with node-forge directly.
 */
import { execFile } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import {
  createCertificateAuthority,
  issueServerCertificate,
  CLOCK_SKEW_BACKDATE_MS,
} from '../../pki/authority.ts';
import type { CertificateAuthority } from '../../pki/authority.ts';
import { DAY_MS } from '../../pki/lifetimes.ts';
import { issueAgentCertificate } from '../../pki/certificate-template.ts';
import { buildCrl } from '../../pki/crl.ts';
import type { RevokedCertificate } from '../../pki/crl.ts';
import { spkiFingerprint } from '../../pki/fingerprint.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair } from '../../pki/keys.ts';
import type { RsaKeyPair } from '../../pki/keys.ts';
import { formatSpiffeId } from '../../relay/protocol/identity.ts';
import type { Role } from '../../relay/protocol/identity.ts';

export const TEST_TRUST_DOMAIN = 'test.dmz';
/** The CA's name; the foreign CA uses it too, so only the signature tells them apart. */
export const TEST_CA_COMMON_NAME = 'dmz-relay test CA';
/** 2048 bits everywhere (the CA too): the smallest key the product accepts, and the fastest. */
const TEST_KEY_BITS = AGENT_KEY_BITS;
const AGENT_LIFETIME_MS = DAY_MS;
const RELAY_LIFETIME_DAYS = 1;

export interface AgentCredentials {
  readonly certPem: string;
  readonly keyPem: string;
  /** Lower-case hex, as pki/ reports serials. */
  readonly serialHex: string;
}

export interface TestPki {
  readonly trustDomain: string;
  readonly ca: CertificateAuthority;
  readonly caFingerprint: string;
  /** Server certificate for DNS localhost and IPs 127.0.0.1 and ::1. */
  readonly relay: { readonly certPem: string; readonly keyPem: string };
  /** The current CRL: empty at first, then every serial passed to revoke(). Valid for a day. */
  readonly crlPem: string;
  /** A fresh certificate (unique serial) for the fixture's shared agent key. */
  issueAgent(
    role: Role,
    name: string,
    opts?: { notBefore?: Date; notAfter?: Date },
  ): Promise<AgentCredentials>;
  /** Adds the serial to the CRL and returns the new CRL PEM (also readable as crlPem). */
  revoke(serialHex: string): string;
  /** A well-formed agent certificate, signed by its own key instead of the CA. */
  selfSigned(role: Role, name: string): Promise<AgentCredentials>;
  /** An agent certificate from the production template, signed by another CA of the same name. */
  foreignCa(role: Role, name: string): Promise<AgentCredentials>;
  expired(role: Role, name: string): Promise<AgentCredentials>;
  notYetValid(role: Role, name: string): Promise<AgentCredentials>;
  /** The CA's own certificate and key. */
  caAsClient(): AgentCredentials;
  /** Issued by our CA for clientAuth, but with only a DNS SAN: TLS accepts it, identity must not. */
  withoutIdentity(): Promise<AgentCredentials>;
  /** The relay's serverAuth-only certificate and key. */
  serverCertAsClient(): AgentCredentials;
}

export async function createTestPki(opts: { trustDomain?: string } = {}): Promise<TestPki> {
  const trustDomain = opts.trustDomain ?? TEST_TRUST_DOMAIN;
  const [ca, relayKeys, agentKeys] = await Promise.all([
    createCertificateAuthority({ commonName: TEST_CA_COMMON_NAME, keyBits: TEST_KEY_BITS }),
    generateRsaKeyPair(TEST_KEY_BITS),
    generateRsaKeyPair(TEST_KEY_BITS),
  ]);
  const relayCert = await issueServerCertificate({
    ca,
    publicKeyPem: relayKeys.publicKeyPem,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
    lifetimeDays: RELAY_LIFETIME_DAYS,
  });
  const relay = { certPem: relayCert.certPem, keyPem: relayKeys.privateKeyPem };

  const revoked: RevokedCertificate[] = [];
  let crlNumber = 1;
  const currentCrl = (): string => {
    const now = Date.now();
    return buildCrl({
      ca,
      revoked,
      crlNumber,
      thisUpdate: new Date(now - CLOCK_SKEW_BACKDATE_MS),
      nextUpdate: new Date(now + DAY_MS),
    });
  };
  let crlPem = currentCrl();
  let foreignAuthority: Promise<CertificateAuthority> | undefined;

  const issueFrom = async (
    issuer: CertificateAuthority,
    role: Role,
    name: string,
    validity: { notBefore?: Date; notAfter?: Date } = {},
  ): Promise<AgentCredentials> => {
    const issued = await issueAgentCertificate({
      ca: issuer,
      publicKeyPem: agentKeys.publicKeyPem,
      identity: { trustDomain, role, name },
      lifetimeMs: AGENT_LIFETIME_MS,
      ...validity,
    });
    return { certPem: issued.certPem, keyPem: agentKeys.privateKeyPem, serialHex: issued.serialHex };
  };

  return {
    trustDomain,
    ca,
    caFingerprint: spkiFingerprint(ca.certPem),
    relay,
    get crlPem() {
      return crlPem;
    },
    issueAgent: (role, name, validity) => issueFrom(ca, role, name, validity),
    revoke(serialHex) {
      revoked.push({ serialHex, revokedAt: new Date() });
      crlNumber += 1;
      crlPem = currentCrl();
      return crlPem;
    },
    selfSigned: (role, name) =>
      Promise.resolve(
        forgeClientCertificate({
          keys: agentKeys,
          commonName: name,
          altNames: [{ type: 6, value: formatSpiffeId({ trustDomain, role, name }) }],
        }),
      ),
    foreignCa: async (role, name) => {
      foreignAuthority ??= createCertificateAuthority({
        commonName: TEST_CA_COMMON_NAME,
        keyBits: TEST_KEY_BITS,
      });
      return issueFrom(await foreignAuthority, role, name);
    },
    expired: (role, name) =>
      issueFrom(ca, role, name, {
        notBefore: new Date(Date.now() - 2 * DAY_MS),
        notAfter: new Date(Date.now() - DAY_MS),
      }),
    notYetValid: (role, name) =>
      issueFrom(ca, role, name, {
        notBefore: new Date(Date.now() + DAY_MS),
        notAfter: new Date(Date.now() + 2 * DAY_MS),
      }),
    caAsClient: () => credentialsOf(ca.certPem, ca.keyPem),
    withoutIdentity: () =>
      Promise.resolve(
        forgeClientCertificate({
          keys: agentKeys,
          commonName: 'no-identity',
          altNames: [{ type: 2, value: `no-identity.${trustDomain}` }],
          issuer: ca,
        }),
      ),
    serverCertAsClient: () => credentialsOf(relay.certPem, relay.keyPem),
  };
}

/**
 * A clientAuth certificate built outside the production template, signed with forge's own RSA
 * (slow, but only for the few hostile certificates a test asks for). Without `issuer` it is
 * self-signed.
 */
function forgeClientCertificate(opts: {
  keys: RsaKeyPair;
  commonName: string;
  altNames: ReadonlyArray<{ type: number; value: string }>;
  issuer?: CertificateAuthority;
}): AgentCredentials {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(opts.keys.publicKeyPem);
  // 128 bits, first nibble 7: positive and minimally encoded, like the production serials.
  cert.serialNumber = `7${randomBytes(16).toString('hex').slice(1)}`;
  cert.validity.notBefore = new Date(Date.now() - CLOCK_SKEW_BACKDATE_MS);
  cert.validity.notAfter = new Date(Date.now() + AGENT_LIFETIME_MS);
  cert.setSubject([{ name: 'commonName', value: opts.commonName }]);
  const issuerCert =
    opts.issuer === undefined ? undefined : forge.pki.certificateFromPem(opts.issuer.certPem);
  cert.setIssuer(issuerCert === undefined ? cert.subject.attributes : issuerCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
    { name: 'subjectAltName', altNames: opts.altNames.map((altName) => ({ ...altName })) },
    { name: 'subjectKeyIdentifier' },
    ...(issuerCert === undefined
      ? []
      : [
          {
            name: 'authorityKeyIdentifier',
            keyIdentifier: issuerCert.generateSubjectKeyIdentifier().getBytes(),
          },
        ]),
  ]);
  const signingKeyPem = opts.issuer?.keyPem ?? opts.keys.privateKeyPem;
  cert.sign(forge.pki.privateKeyFromPem(signingKeyPem), forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(cert);
  return { certPem, keyPem: opts.keys.privateKeyPem, serialHex: cert.serialNumber };
}

function credentialsOf(certPem: string, keyPem: string): AgentCredentials {
  return { certPem, keyPem, serialHex: new X509Certificate(certPem).serialNumber.toLowerCase() };
}

export interface OpensslResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs /usr/bin/openssl in a fresh temporary directory holding `files` (name -> contents), so args
 * name them relatively; the directory is removed afterwards. A non-zero exit is a result, not a throw.
 */
export async function runOpenssl(
  args: readonly string[],
  files: Readonly<Record<string, string>> = {},
): Promise<OpensslResult> {
  const dir = await mkdtemp(join(tmpdir(), 'dmz-pki-test-'));
  try {
    await Promise.all(Object.entries(files).map(([name, contents]) => writeFile(join(dir, name), contents)));
    return await new Promise((resolve, reject) => {
      execFile('/usr/bin/openssl', args, { cwd: dir, encoding: 'utf8' }, (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number')
          reject(new Error('openssl did not run', { cause: error }));
        else resolve({ exitCode: error === null ? 0 : Number(error.code), stdout, stderr });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface OpensslCertificateText {
  /** The whole `openssl x509 -noout -text` output. */
  readonly text: string;
  /** Its "X509v3 extensions" section: extension name -> criticality and value lines. */
  readonly extensions: ReadonlyMap<string, { readonly critical: boolean; readonly value: string }>;
}

/** Reads a certificate the way an operator would, with openssl, not with our own parser. */
export async function opensslCertificateText(certPem: string): Promise<OpensslCertificateText> {
  const { exitCode, stdout, stderr } = await runOpenssl(['x509', '-in', 'cert.pem', '-noout', '-text'], {
    'cert.pem': certPem,
  });
  if (exitCode !== 0) throw new Error(`openssl x509 failed: ${stderr}`);
  const extensions = new Map<string, { critical: boolean; value: string }>();
  const section = /X509v3 extensions:\n([\s\S]*?)\n\s*Signature Algorithm:/.exec(stdout)?.[1] ?? '';
  // Extension names are indented 12 spaces, their values 16.
  for (const [, name, critical, value] of section.matchAll(
    /^ {12}(\S[^:\n]*):( critical)?\s*\n((?: {16}.*\n?)*)/gm,
  )) {
    if (name !== undefined && value !== undefined) {
      extensions.set(name, { critical: critical !== undefined, value: value.trim().replace(/\s+/g, ' ') });
    }
  }
  return { text: stdout, extensions };
}
