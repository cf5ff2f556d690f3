/**
 * The backup's envelope and archive in memory: a round trip, and every way a file can be wrong
 * (passphrase, truncation, a flipped byte anywhere, a newer version, a forged cost, a crafted
 * manifest), each refused with its own code and nothing returned.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { decodeArchive, encodeArchive } from '../../pki/backup-archive.ts';
import { BACKUP_HEADER_BYTES, openBackup, sealBackup } from '../../pki/backup-envelope.ts';
import { STATE_FILES } from '../../pki/state-layout.ts';

const PASSPHRASE = 'a generated passphrase of 32 chars';
const CONTENTS = randomBytes(4096);

/** A copy of `file` with the byte at `index` (negative: from the end) flipped. */
function flipped(file: Buffer, index: number): Buffer {
  const copy = Buffer.from(file);
  const at = index < 0 ? copy.length + index : index;
  copy.writeUInt8((copy.readUInt8(at) ^ 0x01) & 0xff, at);
  return copy;
}

function withByte(file: Buffer, index: number, value: number): Buffer {
  const copy = Buffer.from(file);
  copy.writeUInt8(value, index);
  return copy;
}

/** An archive's bytes from a manifest given as is, for manifests encodeArchive would refuse to write. */
function rawArchive(manifest: unknown, body: Buffer = Buffer.alloc(0)): Buffer {
  const json = Buffer.from(JSON.stringify(manifest));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  return Buffer.concat([length, json, body]);
}

const STATE_NAMES = Object.values(STATE_FILES);
const validFiles = () => STATE_NAMES.map((name) => ({ kind: 'state', name, bytes: 1 }));
const manifestWith = (files: unknown) => ({
  format: 1,
  createdAt: new Date(0).toISOString(),
  trustDomain: 'plant.test',
  caFingerprint: 'sha256:00',
  files,
});

describe('pki - backup envelope', () => {
  let sealed: Buffer;
  before(async () => {
    sealed = await sealBackup(CONTENTS, PASSPHRASE);
  });

  it('opens what it sealed, and seals the same contents differently each time', async () => {
    assert.deepEqual(await openBackup(sealed, PASSPHRASE), CONTENTS);
    const again = await sealBackup(CONTENTS, PASSPHRASE);
    assert.notDeepEqual(again.subarray(0, BACKUP_HEADER_BYTES), sealed.subarray(0, BACKUP_HEADER_BYTES));
    assert.ok(!sealed.includes(CONTENTS.subarray(0, 32)), 'the contents are not in the clear');
    assert.equal(sealed.subarray(0, 16).toString('ascii'), 'dmz-relay-backup');
  });

  // Offsets: magic 0-15, version 16, kdf 17, log2 N 18, r 19, p 20, salt 21-52, nonce 53-64,
  // header MAC 65-96, then the ciphertext and, last, the 16-byte tag.
  const refusals: readonly [string, (file: Buffer) => Buffer, string, string?][] = [
    ['a wrong passphrase', (file) => file, 'PKI_ERR_BACKUP_PASSPHRASE', 'not the passphrase at all'],
    ['an empty file', () => Buffer.alloc(0), 'PKI_ERR_BACKUP_DAMAGED'],
    ['another file entirely', () => randomBytes(1000), 'PKI_ERR_BACKUP_DAMAGED'],
    ['the header alone', (file) => file.subarray(0, BACKUP_HEADER_BYTES), 'PKI_ERR_BACKUP_DAMAGED'],
    ['the last byte cut off', (file) => file.subarray(0, -1), 'PKI_ERR_BACKUP_DAMAGED'],
    ['cut in half', (file) => file.subarray(0, file.length >> 1), 'PKI_ERR_BACKUP_DAMAGED'],
    [
      'a byte flipped in the contents',
      (file) => flipped(file, BACKUP_HEADER_BYTES + 100),
      'PKI_ERR_BACKUP_DAMAGED',
    ],
    ['a byte flipped in the tag', (file) => flipped(file, -1), 'PKI_ERR_BACKUP_DAMAGED'],
    ['a byte flipped in the magic', (file) => flipped(file, 3), 'PKI_ERR_BACKUP_DAMAGED'],
    ['a newer format version', (file) => withByte(file, 16, 2), 'PKI_ERR_BACKUP_VERSION'],
    ['another key derivation', (file) => withByte(file, 17, 2), 'PKI_ERR_BACKUP_DAMAGED'],
    // Refused before scrypt runs: 2^30 x 8 x 128 bytes would be 1 TiB.
    ['a forged scrypt cost', (file) => withByte(file, 18, 30), 'PKI_ERR_BACKUP_DAMAGED'],
    ['a cost lowered to speed up guessing', (file) => withByte(file, 18, 10), 'PKI_ERR_BACKUP_DAMAGED'],
    // Covered by the header MAC: a changed salt or nonce reads as the wrong passphrase.
    ['a byte flipped in the salt', (file) => flipped(file, 30), 'PKI_ERR_BACKUP_PASSPHRASE'],
    ['a byte flipped in the nonce', (file) => flipped(file, 60), 'PKI_ERR_BACKUP_PASSPHRASE'],
    ['a byte flipped in the header MAC', (file) => flipped(file, 80), 'PKI_ERR_BACKUP_PASSPHRASE'],
  ];
  for (const [name, alter, code, passphrase] of refusals) {
    it(`refuses ${name} (${code})`, async () => {
      await assert.rejects(openBackup(alter(sealed), passphrase ?? PASSPHRASE), { code });
    });
  }
});

describe('pki - backup archive', () => {
  it('decodes what it encodes', () => {
    const entries = STATE_NAMES.map((name, index) => ({
      kind: 'state' as const,
      name,
      contents: Buffer.from(`${name} ${index}`),
    }));
    const archive = {
      createdAt: new Date('2026-12-01T00:00:00Z'),
      trustDomain: 'plant.test',
      caFingerprint: 'sha256:ab',
      entries: [...entries, { kind: 'config' as const, name: 'relay.yaml', contents: Buffer.from('x: 1') }],
    };
    assert.deepEqual(decodeArchive(encodeArchive(archive)), archive);
  });

  const body = Buffer.alloc(STATE_NAMES.length, 0x41);
  const refusals: readonly [string, Buffer][] = [
    [
      'a path out of the state directory',
      rawArchive(manifestWith([...validFiles(), { kind: 'state', name: '../x', bytes: 0 }]), body),
    ],
    [
      'an absolute path',
      rawArchive(manifestWith([...validFiles(), { kind: 'state', name: '/etc/passwd', bytes: 0 }]), body),
    ],
    [
      'a configuration under another name',
      rawArchive(manifestWith([...validFiles(), { kind: 'config', name: '../relay.yaml', bytes: 0 }]), body),
    ],
    [
      'a file twice',
      rawArchive(manifestWith([...validFiles(), { kind: 'state', name: 'ca.pem', bytes: 0 }]), body),
    ],
    ['a required file missing', rawArchive(manifestWith(validFiles().slice(1)), body.subarray(1))],
    ['sizes beyond the bytes there are', rawArchive(manifestWith(validFiles()), body.subarray(1))],
    [
      'bytes beyond the sizes',
      rawArchive(manifestWith(validFiles()), Buffer.concat([body, Buffer.from('x')])),
    ],
    [
      'a negative size',
      rawArchive(
        manifestWith([...validFiles().slice(1), { kind: 'state', name: 'ca.pem', bytes: -1 }]),
        body,
      ),
    ],
    ['an unknown manifest field', rawArchive({ ...manifestWith(validFiles()), extra: true }, body)],
    ['a manifest that is not JSON', Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{{{')])],
    ['a manifest length past the end', Buffer.from([0xff, 0xff, 0xff, 0xff])],
  ];
  for (const [name, bytes] of refusals) {
    it(`refuses ${name}`, () => {
      assert.throws(() => decodeArchive(bytes), { code: 'PKI_ERR_BACKUP_DAMAGED' });
    });
  }

  it('refuses contents of a newer format', () => {
    assert.throws(() => decodeArchive(rawArchive({ ...manifestWith(validFiles()), format: 3 }, body)), {
      code: 'PKI_ERR_BACKUP_VERSION',
    });
  });

  it('reads format 1 (before the PKI audit log) and format 2 (with it)', () => {
    for (const format of [1, 2]) {
      const archive = decodeArchive(rawArchive({ ...manifestWith(validFiles()), format }, body));
      assert.equal(archive.entries.length, validFiles().length);
    }
  });
});
