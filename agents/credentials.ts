/**
 * The agent's credential directory: its private key (made on this host and never sent anywhere),
 * its certificate, the CA certificate it trusts, and identity.json for people and scripts.
 * Directory 0700, files 0600 (owner only: the directory holds the private key, and whoever can swap
 * ca.pem decides trust). Replacing them (renewal, re-enrollment) is crash-safe: the new set
 * is staged beside the old one, a marker says it is complete, then it is renamed into place; a
 * load after a crash finishes a marked swap or discards an unmarked one. The key and certificate
 * on disk are always a matching pair.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { fileError, quote } from '../relay/protocol/command-line.ts';
import {
  createPrivateDirectory,
  syncDirectory,
  writeNewFileFlushed,
} from '../relay/protocol/durable-files.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import { refuseOpenPermissions } from '../relay/protocol/file-permissions.ts';
import { formatSpiffeId, identityFromSubjectAltName } from '../relay/protocol/identity.ts';
import { RoleSchema } from '../relay/protocol/role-schema.ts';

export const CREDENTIAL_FILES = {
  privateKey: 'key.pem',
  certificate: 'cert.pem',
  ca: 'ca.pem',
  identity: 'identity.json',
} as const;
type CredentialFile = keyof typeof CREDENTIAL_FILES;

export const EnrolledIdentitySchema = Type.Object(
  {
    name: Type.String(),
    role: RoleSchema,
    trustDomain: Type.String(),
    spiffeId: Type.String(),
    /** Lower-case hex, as the relay's PKI reports serials. */
    serial: Type.String(),
    /** ISO 8601. */
    notAfter: Type.String(),
  },
  { additionalProperties: false },
);
export type EnrolledIdentity = Static<typeof EnrolledIdentitySchema>;

export interface AgentCredentialSet {
  readonly keyPem: string;
  readonly certPem: string;
  readonly caPem: string;
  readonly identity: EnrolledIdentity;
}

/**
 * Run before a key is made or a token sent, so a refusal costs nothing: refuses a directory that
 * already holds credentials unless `force`, then creates it (0700) or checks the existing one.
 * Returns the first directory it created, if any, for the caller to remove when enrollment fails.
 */
export async function prepareCredentialDirectory(
  dir: string,
  options: { force: boolean },
): Promise<string | undefined> {
  if (!options.force) {
    const present = Object.values(CREDENTIAL_FILES).filter((file) => existsSync(join(dir, file)));
    if (present.length > 0) {
      throw new DmzError('PKI_ERR_ALREADY_ENROLLED', `${quote(dir)} already holds ${present.join(', ')}`, {
        hint: 'use --force to replace this identity, or choose another --dir',
      });
    }
  }
  let created: string | undefined;
  try {
    created = await createPrivateDirectory(dir);
  } catch (cause) {
    // mkdir -p fails with EEXIST only when the path is there and is no directory.
    if ((cause as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new DmzError(
        'CLI_ERR_FILE',
        `cannot use ${quote(dir)} as the credential directory: it is not a directory`,
        {
          cause,
          hint: 'give --dir a directory, or a path where one can be created',
        },
      );
    }
    throw fileError('create the credential directory', dir, cause);
  }
  refuseOpenPermissions(dir);
  return created;
}

/** Staged copies of the next credential set, and the marker saying the staged set is complete. */
const STAGED_SUFFIX = '.next';
const SWAP_MARKER = 'swap.ready';

export async function storeCredentials(dir: string, credentials: AgentCredentialSet): Promise<void> {
  const { keyPem, certPem, caPem, identity } = credentials;
  const contents: Record<CredentialFile, string> = {
    privateKey: keyPem,
    certificate: certPem,
    ca: caPem,
    identity: `${JSON.stringify(identity, null, 2)}\n`,
  };
  for (const file of CREDENTIAL_FILE_KEYS) await writeFlushed(stagedPath(dir, file), contents[file]);
  await syncDirectory(dir);
  await writeFlushed(join(dir, SWAP_MARKER), '');
  await syncDirectory(dir);
  await finishSwap(dir);
}

/** Completes a swap whose staged set is marked complete; discards a staged set that is not. */
async function recoverSwap(dir: string): Promise<void> {
  if (existsSync(join(dir, SWAP_MARKER))) {
    await finishSwap(dir);
    return;
  }
  await Promise.all(CREDENTIAL_FILE_KEYS.map((file) => rm(stagedPath(dir, file), { force: true })));
}

async function finishSwap(dir: string): Promise<void> {
  for (const file of CREDENTIAL_FILE_KEYS) {
    if (existsSync(stagedPath(dir, file)))
      await rename(stagedPath(dir, file), join(dir, CREDENTIAL_FILES[file]));
  }
  await syncDirectory(dir);
  await rm(join(dir, SWAP_MARKER), { force: true });
  await syncDirectory(dir);
}

const CREDENTIAL_FILE_KEYS = Object.keys(CREDENTIAL_FILES) as CredentialFile[];

function stagedPath(dir: string, file: CredentialFile): string {
  return join(dir, `${CREDENTIAL_FILES[file]}${STAGED_SUFFIX}`);
}

/** For `dmz-agent run`: everything checked again, since files can be edited between runs. */
export async function loadCredentials(dir: string): Promise<AgentCredentialSet> {
  refuseOpenPermissions(dir);
  await recoverSwap(dir);
  const [keyPem, certPem, caPem, identityJson] = await Promise.all([
    readCredential(dir, 'privateKey'),
    readCredential(dir, 'certificate'),
    readCredential(dir, 'ca'),
    readCredential(dir, 'identity'),
  ]);
  refuseOpenPermissions(join(dir, CREDENTIAL_FILES.privateKey));
  const identity = readEnrolledIdentity({ keyPem, certPem, caPem });
  let recorded: unknown;
  try {
    recorded = JSON.parse(identityJson);
  } catch {
    recorded = undefined;
  }
  if (!Value.Check(EnrolledIdentitySchema, recorded) || !isSameIdentity(recorded, identity)) {
    throw new DmzError('PKI_ERR_NOT_ENROLLED', `${CREDENTIAL_FILES.identity} does not describe cert.pem`);
  }
  return { keyPem, certPem, caPem, identity };
}

/**
 * What a certificate says about us, after checking it belongs here: issued and signed by the CA
 * (itself a self-signed CA certificate) and certifying our own key. Identity comes from the
 * certificate's SPIFFE URI SAN only.
 */
export function readEnrolledIdentity(pems: {
  keyPem: string;
  certPem: string;
  caPem: string;
}): EnrolledIdentity {
  const ca = parseCertificate(pems.caPem, CREDENTIAL_FILES.ca);
  const certificate = parseCertificate(pems.certPem, CREDENTIAL_FILES.certificate);
  if (!ca.ca || !ca.verify(ca.publicKey)) {
    throw new DmzError('PKI_ERR_CA_MISMATCH', 'the CA certificate is not a self-signed CA certificate');
  }
  if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey)) {
    throw new DmzError('PKI_ERR_CA_MISMATCH', 'the agent certificate was not issued by the CA');
  }
  let matchesKey = false;
  try {
    matchesKey = certificate.checkPrivateKey(createPrivateKey(pems.keyPem));
  } catch {
    matchesKey = false;
  }
  if (!matchesKey) throw new DmzError('PKI_ERR_CERT_INVALID', 'the agent certificate is not for this key');
  const san = certificate.subjectAltName;
  // The trust domain is learned from the certificate; the strict one-URI-SAN rule still applies.
  const trustDomain = /^URI:spiffe:\/\/([^/]+)\//.exec(san ?? '')?.[1] ?? '';
  let identity;
  try {
    identity = identityFromSubjectAltName(san, trustDomain);
  } catch (cause) {
    throw new DmzError('PKI_ERR_CERT_INVALID', 'the agent certificate carries no agent identity', { cause });
  }
  return {
    name: identity.name,
    role: identity.role,
    trustDomain: identity.trustDomain,
    spiffeId: formatSpiffeId(identity),
    serial: certificate.serialNumber.toLowerCase(),
    notAfter: new Date(certificate.validTo).toISOString(),
  };
}

function parseCertificate(pem: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (cause) {
    throw new DmzError('PKI_ERR_CERT_INVALID', `${what} is not a PEM certificate`, { cause });
  }
}

function isSameIdentity(a: EnrolledIdentity, b: EnrolledIdentity): boolean {
  return (Object.keys(b) as (keyof EnrolledIdentity)[]).every((key) => a[key] === b[key]);
}

async function readCredential(dir: string, file: CredentialFile): Promise<string> {
  try {
    return await readFile(join(dir, CREDENTIAL_FILES[file]), 'utf8');
  } catch (cause) {
    throw new DmzError('PKI_ERR_NOT_ENROLLED', `${dir} has no readable ${CREDENTIAL_FILES[file]}`, { cause });
  }
}

/** Created exclusively (already 0600, never readable by others even for a moment), then flushed. */
async function writeFlushed(path: string, contents: string): Promise<void> {
  await rm(path, { force: true });
  await writeNewFileFlushed(path, contents);
}
