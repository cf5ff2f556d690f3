/**
 * What a backup holds, before encryption (backup-envelope.ts): a manifest, then the files' bytes
 * in its order. Layout: the manifest's length (4 bytes, big-endian), the manifest (UTF-8 JSON),
 * the files. Only the envelope's owner can have made one, yet restore still trusts nothing in it
 * it has not checked: every name must be one of the state's own (no path can be smuggled in), no
 * name twice, every required file present, and the sizes must add up to the bytes there are.
 */
import { DmzError } from '../relay/protocol/errors.ts';
import { TICKET_KEY_FILE } from '../relay/server/session-tickets.ts';
import { AUDIT_LOG_FILE, STATE_FILES } from './state-layout.ts';

/** The contents' own version, apart from the envelope's: 2 added the PKI audit log. */
const ARCHIVE_FORMAT = 2;
/** Every format this program restores: those it or an earlier release wrote. */
const READABLE_FORMATS: readonly number[] = [1, ARCHIVE_FORMAT];
const LENGTH_BYTES = 4;
/** Far beyond a manifest of a dozen names; a bound so a damaged length cannot ask for gigabytes. */
const MAX_MANIFEST_BYTES = 64 * 1024;

/** The relay's configuration, kept under this name in the archive whatever its name on disk. */
export const CONFIG_ENTRY = 'relay.yaml';
/** Every state file the CA needs; a backup without one of them is no backup of a CA. */
const REQUIRED_STATE_FILES: readonly string[] = Object.values(STATE_FILES);
/**
 * The session ticket salt: only there once a relay has run on the state. The PKI audit log: only
 * once a command has been audited.
 */
const OPTIONAL_STATE_FILES: readonly string[] = [TICKET_KEY_FILE, AUDIT_LOG_FILE];

export type ArchiveEntryKind = 'state' | 'config';

export interface ArchiveEntry {
  readonly kind: ArchiveEntryKind;
  /** A file name in the state directory (`ca.pem`), or CONFIG_ENTRY. */
  readonly name: string;
  readonly contents: Buffer;
}

export interface BackupArchive {
  readonly createdAt: Date;
  readonly trustDomain: string;
  readonly caFingerprint: string;
  readonly entries: readonly ArchiveEntry[];
}

interface Manifest {
  format: number;
  createdAt: string;
  trustDomain: string;
  caFingerprint: string;
  files: { kind: ArchiveEntryKind; name: string; bytes: number }[];
}

/** The state files a backup must or may hold, in the order they are written. */
export const BACKUP_STATE_FILES = { required: REQUIRED_STATE_FILES, optional: OPTIONAL_STATE_FILES } as const;

export function encodeArchive(archive: BackupArchive): Buffer {
  const manifest: Manifest = {
    format: ARCHIVE_FORMAT,
    createdAt: archive.createdAt.toISOString(),
    trustDomain: archive.trustDomain,
    caFingerprint: archive.caFingerprint,
    files: archive.entries.map(({ kind, name, contents }) => ({ kind, name, bytes: contents.length })),
  };
  checkEntries(manifest.files);
  const json = Buffer.from(JSON.stringify(manifest), 'utf8');
  const length = Buffer.alloc(LENGTH_BYTES);
  length.writeUInt32BE(json.length);
  return Buffer.concat([length, json, ...archive.entries.map((entry) => entry.contents)]);
}

export function decodeArchive(bytes: Buffer): BackupArchive {
  if (bytes.length < LENGTH_BYTES) throw malformed('it has no manifest');
  const manifestBytes = bytes.readUInt32BE(0);
  if (manifestBytes > MAX_MANIFEST_BYTES || LENGTH_BYTES + manifestBytes > bytes.length) {
    throw malformed('its manifest length is out of range');
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(bytes.subarray(LENGTH_BYTES, LENGTH_BYTES + manifestBytes).toString('utf8'));
  } catch (cause) {
    throw malformed('its manifest is not JSON', cause);
  }
  const checked = checkManifest(manifest);
  let offset = LENGTH_BYTES + manifestBytes;
  const entries = checked.files.map(({ kind, name, bytes: size }) => {
    const contents = bytes.subarray(offset, offset + size);
    offset += size;
    return { kind, name, contents };
  });
  if (offset !== bytes.length) throw malformed("its files' sizes do not add up to its length");
  return {
    createdAt: new Date(checked.createdAt),
    trustDomain: checked.trustDomain,
    caFingerprint: checked.caFingerprint,
    entries,
  };
}

function checkManifest(value: unknown): Manifest {
  const manifest = value as Partial<Manifest> | null;
  if (
    typeof manifest !== 'object' ||
    manifest === null ||
    Object.keys(manifest).sort().join() !== 'caFingerprint,createdAt,files,format,trustDomain'
  ) {
    throw malformed('its manifest has other fields than a backup of this program');
  }
  if (typeof manifest.format !== 'number' || !READABLE_FORMATS.includes(manifest.format)) {
    throw new DmzError(
      'PKI_ERR_BACKUP_VERSION',
      `the backup's contents are of format ${String(manifest.format)}`,
    );
  }
  const { createdAt, trustDomain, caFingerprint, files } = manifest;
  if (
    typeof createdAt !== 'string' ||
    !Number.isFinite(Date.parse(createdAt)) ||
    typeof trustDomain !== 'string' ||
    typeof caFingerprint !== 'string' ||
    !Array.isArray(files)
  ) {
    throw malformed('its manifest is incomplete');
  }
  for (const file of files as unknown[]) {
    const entry = file as Partial<Manifest['files'][number]> | null;
    if (
      typeof entry !== 'object' ||
      entry === null ||
      Object.keys(entry).sort().join() !== 'bytes,kind,name' ||
      (entry.kind !== 'state' && entry.kind !== 'config') ||
      typeof entry.name !== 'string' ||
      !Number.isSafeInteger(entry.bytes) ||
      (entry.bytes ?? -1) < 0
    ) {
      throw malformed('a file entry of its manifest is malformed');
    }
  }
  checkEntries(files);
  return manifest as Manifest;
}

/** Names the state knows only, each once, every required one there. */
function checkEntries(files: readonly Pick<ArchiveEntry, 'kind' | 'name'>[]): void {
  const seen = new Set<string>();
  for (const { kind, name } of files) {
    const known =
      kind === 'config'
        ? name === CONFIG_ENTRY
        : REQUIRED_STATE_FILES.includes(name) || OPTIONAL_STATE_FILES.includes(name);
    if (!known) throw malformed(`it holds a file this program does not restore: ${JSON.stringify(name)}`);
    const key = `${kind}:${name}`;
    if (seen.has(key)) throw malformed(`it holds ${JSON.stringify(name)} twice`);
    seen.add(key);
  }
  const missing = REQUIRED_STATE_FILES.find((name) => !seen.has(`state:${name}`));
  if (missing !== undefined) throw malformed(`it lacks the state file ${JSON.stringify(missing)}`);
}

function malformed(why: string, cause?: unknown): DmzError {
  return new DmzError('PKI_ERR_BACKUP_DAMAGED', `the backup's contents cannot be used: ${why}`, {
    ...(cause === undefined ? {} : { cause }),
    hint: 'nothing was restored',
  });
}
