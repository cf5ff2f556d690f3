/**
 * Protocol limits shared by relay and agents. Each is a named constant with the reason for its
 * value; relay configuration may lower (never raise) the per-deployment ones.
 */

/**
 * WebSocket subprotocol (RFC 6455 section 1.9) naming this wire protocol version. v2 carries the
 * points of a publish as one opaque batch with a count (v1: an array the relay decoded point by
 * point); a v1 client is refused at the upgrade.
 */
export const SUBPROTOCOL = 'dmz-relay.v2';

/**
 * An agent name is one DNS label (RFC 1035 section 2.3.4: 63 octets at most): it is the name in a
 * SPIFFE ID and a certificate, and the first segment of the agent's topics.
 */
export const MAX_AGENT_NAME_LENGTH = 63;

/** Topics: 16 levels cover ISA-95 (enterprise/site/area/line/cell/unit/point) with room to spare. */
export const MAX_TOPIC_DEPTH = 16;
/** 256 bytes keeps a topic well inside one cache-friendly string and a frame header. */
export const MAX_TOPIC_BYTES = 256;
/** One segment: a tag name; OPC UA browse names in practice stay far below 64 characters. */
export const MAX_TOPIC_SEGMENT_BYTES = 64;

/**
 * A consumer's resume cursor: its position in each stream of the OT agent's log that the
 * subscription covers (agents/points/resume-cursor.ts), about 12 bytes a stream. 64 KiB holds a
 * few thousand streams, a large plant's tags under one filter, and is still a small frame: the
 * relay forwards it once per subscribe, within the receiver's queue budget like any other frame.
 */
export const MAX_RESUME_BYTES = 64 * 1024;

/** Default and hard ceiling for one frame: 1 MiB, far above a batch of points, far below memory. */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** Points in one publish frame: batching amortises per-frame cost; 4096 bounds decode work. */
export const MAX_POINTS_PER_FRAME = 4096;
/** A request's deadline may be at most one minute away: commands to a plant are not queued. */
export const MAX_REQUEST_TIMEOUT_MS = 60_000;
/** Largest message text in an error frame; longer text is a bug or an attack. */
export const MAX_ERROR_MESSAGE_LENGTH = 512;
/** TLS 1.3 only, on every listener and every client: no downgrade, forward secrecy always (RFC 8446). */
export const MIN_TLS_VERSION = 'TLSv1.3';
/**
 * Key-exchange groups offered and accepted (OpenSSL's list syntax), on every listener and client:
 * cheap and strong ones only. Node's default list also offers the finite-field groups
 * ffdhe2048..ffdhe8192 (RFC 7919); an ffdhe8192 handshake costs a server about 70 times an X25519
 * one, so a client that offers only that group, and does no cryptography itself, could drain the
 * relay's CPU with replayed ClientHellos.
 */
export const KEY_EXCHANGE_GROUPS = 'X25519:P-256:P-384';
/**
 * A PEM document on the wire (a CSR, a certificate): an agent's CSR is 1-2 KiB and an RSA-8192
 * certificate ~3 KiB; 16 KiB leaves room for any honest one and caps the base64 and ASN.1 work an
 * unauthenticated peer can cause.
 */
export const MAX_PEM_BYTES = 16 * 1024;
/** Enrollment tokens arrive on an unauthenticated port: capped before any parsing. Ours are < 1 KiB. */
export const MAX_TOKEN_BYTES = 4096;
/** Largest correlation number (u32): fits msgpack's compact ints and JS numbers exactly. */
export const MAX_U32 = 0xffff_ffff;
