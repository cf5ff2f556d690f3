/**
 * A TLS 1.3 ClientHello as Node's own client writes it for one key-exchange group, captured on a
 * plain loopback socket so that a flood can replay it: the attacker then does no cryptography at
 * all, while the relay still computes its key share and signs its handshake for each copy. The
 * capture is parsed to check what it really offers (supported_groups and key_share).
 */
import { randomFillSync } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { connect } from 'node:tls';

/** IANA TLS Supported Groups registry (RFC 8446 section 4.2.7, RFC 7919). */
export const TLS_GROUP = { x25519: 0x001d, ffdhe8192: 0x0104 } as const;
export type TlsGroupName = keyof typeof TLS_GROUP;
/** The same groups as Node's `ecdhCurve` option spells them. */
const NODE_GROUP_NAME: Readonly<Record<TlsGroupName, string>> = {
  x25519: 'X25519',
  ffdhe8192: 'ffdhe8192',
};

/** RFC 8446 section 5.1: record header is type(1) version(2) length(2). */
const RECORD_HEADER_BYTES = 5;
const RECORD_TYPE_HANDSHAKE = 22;
const HANDSHAKE_TYPE_CLIENT_HELLO = 1;
/** Section 4.1.2: after the record header, msg_type(1) length(3) legacy_version(2), then random(32). */
const RANDOM_OFFSET = RECORD_HEADER_BYTES + 4 + 2;
const RANDOM_BYTES = 32;
const EXTENSION_SUPPORTED_GROUPS = 10;
const EXTENSION_KEY_SHARE = 51;
const CAPTURE_TIMEOUT_MS = 5_000;

export interface CapturedClientHello {
  readonly group: TlsGroupName;
  /** The whole first TLS record: one ClientHello (1.2 KB with an ffdhe8192 key share). */
  readonly record: Buffer;
  /** IANA codes from supported_groups, in the client's order. */
  readonly offeredGroups: readonly number[];
  /** IANA codes of the key shares the client sent. */
  readonly keyShareGroups: readonly number[];
}

/**
 * Node's TLS client with `ecdhCurve` set to `group` and TLS 1.3 only, against a local socket that
 * keeps the first record and hangs up. Rejects unless that record offers `group` and nothing else.
 */
export async function captureClientHello(group: TlsGroupName): Promise<CapturedClientHello> {
  const record = await new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => {
      server.close();
      reject(new Error(`no ClientHello within ${CAPTURE_TIMEOUT_MS} ms`));
    }, CAPTURE_TIMEOUT_MS);
    const server = createServer((socket) => {
      let received = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length < RECORD_HEADER_BYTES) return;
        const length = RECORD_HEADER_BYTES + received.readUInt16BE(3);
        if (received.length < length) return;
        clearTimeout(timer);
        socket.destroy();
        server.close();
        resolve(received.subarray(0, length));
      });
      socket.on('error', () => undefined);
    });
    server.listen(0, '127.0.0.1', () => {
      const client = connect({
        host: '127.0.0.1',
        port: (server.address() as AddressInfo).port,
        ecdhCurve: NODE_GROUP_NAME[group],
        minVersion: 'TLSv1.3',
        // The capture server never answers; nothing is ever verified or sent over this socket.
        rejectUnauthorized: false,
      });
      client.on('error', () => undefined); // the capture server hangs up by design
    });
  });
  const { offeredGroups, keyShareGroups } = parseClientHelloGroups(record);
  const expected = TLS_GROUP[group];
  if (offeredGroups.some((code) => code !== expected) || keyShareGroups.some((code) => code !== expected)) {
    throw new Error(
      `Node's ClientHello for ${group} offers groups [${offeredGroups.map(formatGroupCode).join(', ')}] with key shares ` +
        `[${keyShareGroups.map(formatGroupCode).join(', ')}], not only ${formatGroupCode(expected)}`,
    );
  }
  return { group, record, offeredGroups, keyShareGroups };
}

/** A copy with a fresh ClientHello.random, as a real client would send each time. */
export function withFreshRandom(hello: CapturedClientHello): Buffer {
  const copy = Buffer.from(hello.record);
  randomFillSync(copy, RANDOM_OFFSET, RANDOM_BYTES);
  return copy;
}

/** supported_groups and key_share of one ClientHello record (RFC 8446 sections 4.1.2, 4.2.7, 4.2.8). */
export function parseClientHelloGroups(record: Buffer): {
  offeredGroups: number[];
  keyShareGroups: number[];
} {
  if (record[0] !== RECORD_TYPE_HANDSHAKE || record[RECORD_HEADER_BYTES] !== HANDSHAKE_TYPE_CLIENT_HELLO) {
    throw new Error('the captured record is not a ClientHello');
  }
  let offset = RANDOM_OFFSET + RANDOM_BYTES;
  offset += 1 + record.readUInt8(offset); // legacy_session_id
  offset += 2 + record.readUInt16BE(offset); // cipher_suites
  offset += 1 + record.readUInt8(offset); // legacy_compression_methods
  const extensionsEnd = offset + 2 + record.readUInt16BE(offset);
  offset += 2;
  const offeredGroups: number[] = [];
  const keyShareGroups: number[] = [];
  while (offset + 4 <= extensionsEnd) {
    const type = record.readUInt16BE(offset);
    const length = record.readUInt16BE(offset + 2);
    const body = record.subarray(offset + 4, offset + 4 + length);
    if (type === EXTENSION_SUPPORTED_GROUPS) {
      for (let at = 2; at + 2 <= 2 + body.readUInt16BE(0); at += 2) offeredGroups.push(body.readUInt16BE(at));
    } else if (type === EXTENSION_KEY_SHARE) {
      // KeyShareEntry: group(2) key_exchange<1..2^16-1>.
      for (let at = 2; at + 4 <= 2 + body.readUInt16BE(0); at += 4 + body.readUInt16BE(at + 2)) {
        keyShareGroups.push(body.readUInt16BE(at));
      }
    }
    offset += 4 + length;
  }
  if (offeredGroups.length === 0) throw new Error('the captured ClientHello has no supported_groups');
  return { offeredGroups, keyShareGroups };
}

/** An IANA group code as the registry writes it (0x0104). */
export function formatGroupCode(code: number): string {
  return `0x${code.toString(16).padStart(4, '0')}`;
}
