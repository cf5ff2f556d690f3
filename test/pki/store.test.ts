import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { PKI_DB_FILE, openPkiStore } from '../../pki/store.ts';
import type { NewCertificateRecord, NewTokenRecord, PkiStore } from '../../pki/store.ts';
import { spawnChild } from '../support/child-processes.ts';

const NOW = new Date('2030-01-01T00:00:00Z');
const HOUR = 3600_000;
const CONSUME_HELPER = fileURLToPath(new URL('../support/consume-token.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
const posixModes = process.platform !== 'win32';

let root: string;
let counter = 0;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dmz-pki-store-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh, not yet existing state directory, so openPkiStore creates it. */
function freshStateDir(): string {
  counter += 1;
  return join(root, `state-${counter}`);
}

let store: PkiStore;
let stateDir: string;
beforeEach(() => {
  stateDir = freshStateDir();
  store = openPkiStore(stateDir);
});
afterEach(() => store.close());

function token(jti: string, overrides: Partial<NewTokenRecord> = {}): NewTokenRecord {
  return {
    jti,
    name: 'plc-1',
    role: 'ot',
    createdAt: NOW,
    expiresAt: new Date(NOW.getTime() + HOUR),
    ...overrides,
  };
}

function certificate(serialHex: string, overrides: Partial<NewCertificateRecord> = {}): NewCertificateRecord {
  return {
    serialHex,
    name: 'plc-1',
    role: 'ot',
    notBefore: NOW,
    notAfter: new Date(NOW.getTime() + 72 * HOUR),
    issuedAt: NOW,
    certPem: '-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n',
    ...overrides,
  };
}

describe('pki store: tokens', () => {
  it('consumes a token once; the second use is TOKEN_USED', () => {
    store.recordToken(token('t1'));
    const consumed = store.consumeToken('t1', NOW);
    assert.equal(consumed.status, 'used');
    assert.deepEqual(consumed.usedAt, NOW);
    assert.throws(() => store.consumeToken('t1', NOW), { code: 'PKI_ERR_TOKEN_USED' });
  });

  it('refuses revoked, expired and unknown tokens with the precise code', () => {
    store.recordToken(token('revoked'));
    store.recordToken(token('expired'));
    store.revokeToken('revoked');
    assert.throws(() => store.consumeToken('revoked', NOW), { code: 'PKI_ERR_TOKEN_REVOKED' });
    // exp is exclusive: at the expiry instant the token is already dead (RFC 7519 section 4.1.4).
    assert.throws(() => store.consumeToken('expired', new Date(NOW.getTime() + HOUR)), {
      code: 'PKI_ERR_TOKEN_EXPIRED',
    });
    assert.throws(() => store.consumeToken('never-issued', NOW), { code: 'PKI_ERR_TOKEN_UNKNOWN' });
  });

  it('revokeToken: unknown is NOT_FOUND, used is TOKEN_USED', () => {
    store.recordToken(token('t1'));
    store.consumeToken('t1', NOW);
    assert.throws(() => store.revokeToken('nope'), { code: 'PKI_ERR_NOT_FOUND' });
    assert.throws(() => store.revokeToken('t1'), { code: 'PKI_ERR_TOKEN_USED' });
  });

  it('lists tokens with derived status and knows when none is outstanding', () => {
    for (const jti of ['active', 'used', 'revoked']) store.recordToken(token(jti));
    store.recordToken(token('expired', { expiresAt: new Date(NOW.getTime() - 1) }));
    store.consumeToken('used', NOW);
    store.revokeToken('revoked');
    assert.deepEqual(
      store.listTokens({ now: NOW }).map((t) => t.jti),
      ['active'],
    );
    const statuses = Object.fromEntries(
      store.listTokens({ includeSpent: true, now: NOW }).map((t) => [t.jti, t.status]),
    );
    assert.deepEqual(statuses, { active: 'active', used: 'used', revoked: 'revoked', expired: 'expired' });
    assert.equal(store.hasOutstandingTokens(NOW), true);
    store.revokeToken('active');
    assert.equal(store.hasOutstandingTokens(NOW), false);
  });

  it(
    '8 processes redeem one token at once: exactly one wins, 7 get TOKEN_USED',
    { timeout: 60_000 },
    async (t) => {
      store.recordToken(token('race'));
      const args = ['--import', TSX, CONSUME_HELPER, stateDir, 'race', String(NOW.getTime())];
      // On timeout node:test aborts t.signal, which kills the children instead of leaking them.
      const children = Array.from({ length: 8 }, () =>
        spawnChild(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'], signal: t.signal }),
      );
      const exited = children.map((child) => once(child, 'exit'));
      try {
        const outputs = children.map((child) =>
          createInterface({ input: child.stdout })[Symbol.asyncIterator](),
        );
        const nextLine = async (lines: (typeof outputs)[number]) => String((await lines.next()).value);
        // Fire only once every child has the store open, so the consumes truly overlap.
        for (const lines of outputs) assert.equal(await nextLine(lines), 'ready');
        for (const child of children) child.stdin.end('go\n');
        const outcomes = await Promise.all(
          outputs.map(async (lines) => JSON.parse(await nextLine(lines)) as unknown),
        );
        await Promise.all(exited);
        assert.equal(outcomes.filter((o) => JSON.stringify(o) === '{"ok":true}').length, 1);
        assert.equal(outcomes.filter((o) => JSON.stringify(o) === '{"code":"PKI_ERR_TOKEN_USED"}').length, 7);
        assert.equal(store.listTokens({ includeSpent: true, now: NOW })[0]?.status, 'used');
      } finally {
        for (const child of children) child.kill();
      }
    },
  );
});

describe('pki store: certificates and revocation', () => {
  it('revoking an agent revokes all its live certificates, bumps revision, feeds the CRL', () => {
    store.recordCertificate(certificate('0a01'));
    store.recordCertificate(certificate('0a02'));
    store.recordCertificate(certificate('0b01', { name: 'historian' }));
    assert.equal(store.revision(), 0);
    const revoked = store.revokeCertificates('plc-1', 'keyCompromise', NOW);
    assert.deepEqual(
      revoked.map((c) => [c.serialHex, c.status, c.revocationReason]),
      [
        ['0a01', 'revoked', 'keyCompromise'],
        ['0a02', 'revoked', 'keyCompromise'],
      ],
    );
    assert.equal(store.revision(), 1);
    assert.deepEqual(store.revokedCertificates(), [
      { serialHex: '0a01', revokedAt: NOW },
      { serialHex: '0a02', revokedAt: NOW },
    ]);
    // Again: nothing left to revoke, nothing changes, no spurious CRL reload.
    assert.deepEqual(store.revokeCertificates('plc-1', 'keyCompromise', NOW), []);
    assert.equal(store.revision(), 1);
    assert.equal(store.findCertificates('historian', { now: NOW })[0]?.status, 'valid');
  });

  it('revokes a single certificate by serial; unknown name or serial is NOT_FOUND', () => {
    store.recordCertificate(certificate('0A01'));
    store.recordCertificate(certificate('0a02'));
    assert.equal(store.revokeCertificates('0a01', 'superseded', NOW).length, 1);
    assert.deepEqual(
      store.listCertificates({ now: NOW }).map((c) => c.status),
      ['revoked', 'valid'],
    );
    assert.throws(() => store.revokeCertificates('no-such-agent', 'superseded', NOW), {
      code: 'PKI_ERR_NOT_FOUND',
    });
  });

  it('links certificates to their enrollment token and renewals, atomically', () => {
    store.recordToken(token('t1'));
    store.consumeToken('t1', NOW);
    store.recordCertificate(certificate('01', { enrolledWithJti: 't1' }));
    store.recordCertificate(certificate('02', { replacesSerial: '01' }));
    assert.equal(store.listTokens({ includeSpent: true })[0]?.usedBySerial, '01');
    assert.equal(store.findCertificates('01')[0]?.replacedBy, '02');
    // A link to nothing aborts the whole insert.
    assert.throws(() => store.recordCertificate(certificate('03', { replacesSerial: 'ff' })), {
      code: 'PKI_ERR_NOT_FOUND',
    });
    assert.deepEqual(store.findCertificates('03'), []);
    assert.equal(
      store.findCertificates('plc-1', { now: new Date(NOW.getTime() + 73 * HOUR) })[0]?.status,
      'expired',
    );
  });

  it('refuses to record a renewal of a certificate another connection revoked, and records nothing', () => {
    store.recordCertificate(certificate('01'));
    // `dmz-pki revoke` commits from its own process while the relay is signing the renewal.
    const cli = openPkiStore(stateDir);
    try {
      cli.revokeCertificates('01', 'keyCompromise', NOW);
    } finally {
      cli.close();
    }
    assert.throws(() => store.recordCertificate(certificate('02', { replacesSerial: '01' })), {
      code: 'PKI_ERR_NOT_FOUND',
    });
    assert.deepEqual(store.findCertificates('02'), []);
    const [predecessor] = store.findCertificates('01', { now: NOW });
    assert.equal(predecessor?.status, 'revoked');
    assert.equal(predecessor?.replacedBy, null);
  });

  it('another connection sees revocations through revision and data_version', () => {
    store.recordCertificate(certificate('01'));
    const watcher = openPkiStore(stateDir);
    try {
      const [revision, dataVersion] = [watcher.revision(), watcher.dataVersion()];
      store.revokeCertificates('plc-1', 'cessationOfOperation', NOW);
      assert.equal(watcher.revision(), revision + 1);
      assert.notEqual(watcher.dataVersion(), dataVersion);
    } finally {
      watcher.close();
    }
  });

  it('hands out increasing CRL numbers across connections', () => {
    assert.deepEqual([store.nextCrlNumber(), store.nextCrlNumber()], [1, 2]);
    const other = openPkiStore(stateDir);
    try {
      assert.equal(other.nextCrlNumber(), 3);
    } finally {
      other.close();
    }
    assert.equal(store.nextCrlNumber(), 4);
  });

  it('raises the CRL number to a floor, never lowers it', () => {
    store.raiseCrlNumber(1_000);
    assert.equal(store.nextCrlNumber(), 1_001);
    store.raiseCrlNumber(10);
    assert.equal(store.nextCrlNumber(), 1_002);
  });

  it('knows the serials it recorded, however they are printed, and no others', () => {
    // As the CA writes them (authority.ts): lower-case hex, the first octet 0x40 to 0x7f.
    store.recordCertificate(certificate('4f0a01'));
    for (const printed of ['4f0a01', '4F0A01', '004f0a01']) assert.equal(store.hasCertificate(printed), true);
    for (const other of ['4f0a02', 'plc-1', '']) assert.equal(store.hasCertificate(other), false, other);
  });

  it('keeps meta values and data across reopen', () => {
    assert.equal(store.getMeta('ca_serial'), undefined);
    store.setMeta('ca_serial', 'one');
    store.setMeta('ca_serial', 'two');
    store.recordToken(token('kept'));
    const reopened = openPkiStore(stateDir);
    try {
      assert.equal(reopened.getMeta('ca_serial'), 'two');
      assert.equal(reopened.listTokens({ now: NOW })[0]?.jti, 'kept');
    } finally {
      reopened.close();
    }
  });
});

describe('pki store: schema version', () => {
  it('refuses a store written by a newer version (PKI_ERR_STORE_VERSION) and leaves it as it was', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'dmz-store-version-')), 'state');
    try {
      openPkiStore(dir).close();
      const db = new Database(join(dir, PKI_DB_FILE));
      const known = db.pragma('user_version', { simple: true }) as number;
      db.pragma(`user_version = ${known + 1}`);
      db.close();
      assert.throws(() => openPkiStore(dir), { code: 'PKI_ERR_STORE_VERSION' });
      const after = new Database(join(dir, PKI_DB_FILE), { readonly: true });
      assert.equal(after.pragma('user_version', { simple: true }), known + 1);
      after.close();
    } finally {
      await rm(dirname(dir), { recursive: true, force: true });
    }
  });
});

describe('pki store: state directory permissions', { skip: !posixModes && 'POSIX modes only' }, () => {
  it('creates the directory 0700 and the database, WAL and shared-memory files 0600', async () => {
    store.setMeta('written', 'so the WAL exists');
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    for (const suffix of ['', '-wal', '-shm']) {
      assert.equal((await stat(join(stateDir, PKI_DB_FILE + suffix))).mode & 0o777, 0o600, suffix);
    }
  });

  it('refuses an existing directory that is group/world accessible (0755)', async () => {
    const stateDir = freshStateDir();
    await mkdir(stateDir);
    await chmod(stateDir, 0o755);
    assert.throws(() => openPkiStore(stateDir), { code: 'PKI_ERR_STATE_PERMISSIONS' });
  });

  it('refuses a database file readable by others (0644)', async () => {
    const stateDir = freshStateDir();
    await mkdir(stateDir, { mode: 0o700 });
    await writeFile(join(stateDir, PKI_DB_FILE), '', { mode: 0o644 });
    await chmod(join(stateDir, PKI_DB_FILE), 0o644);
    assert.throws(() => openPkiStore(stateDir), { code: 'PKI_ERR_STATE_PERMISSIONS' });
  });
});
