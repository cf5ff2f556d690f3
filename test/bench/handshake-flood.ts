/**
 * Scenario A's attacker: TLS connections to the agent port without a client certificate, paced
 * per source address under the relay's connection limit. Each one replays a captured ClientHello
 * over a plain TCP socket and hangs up as soon as the relay has answered, so the relay does its
 * whole side of the handshake (key share, key schedule, certificate signature) and the attacker
 * none. What the relay did with each attempt is read from the records it sent back.
 */
import { connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { withFreshRandom, type CapturedClientHello } from './client-hello.ts';

/** RFC 8446 section 5.1 content types, and the record header's size. */
const RECORD_TYPE_ALERT = 21;
const RECORD_TYPE_APPLICATION_DATA = 23;
const RECORD_HEADER_BYTES = 5;
/** An alert record's body: level(1) description(1) (section 6). */
const ALERT_DESCRIPTION_OFFSET = RECORD_HEADER_BYTES + 1;
/** Section 6 names for the alerts a refusing server sends. */
const ALERT_NAMES: Readonly<Record<number, string>> = {
  40: 'handshake_failure',
  47: 'illegal_parameter',
  70: 'protocol_version',
  71: 'insufficient_security',
  80: 'internal_error',
};

/**
 * - answered: the relay sent its encrypted flight (ServerHello, then Certificate and CertificateVerify
 *   under the handshake keys): it did the key exchange and the signature, and the attacker left.
 * - refused: a TLS alert instead (say handshake_failure when it shares no group with the client).
 * - dropped: the connection closed or was reset with no TLS answer (a limit before TLS).
 * - unanswered: nothing within the answer timeout (the relay is too busy to get to it).
 */
export type AttemptOutcome = 'answered' | 'refused' | 'dropped' | 'unanswered';

export interface FloodCounts {
  readonly attempted: number;
  readonly answered: number;
  readonly refused: number;
  readonly dropped: number;
  readonly unanswered: number;
  /** Refusals by alert name. */
  readonly alerts: Readonly<Record<string, number>>;
  /** From the first attempt to the last one settled. */
  readonly durationMs: number;
}

export interface FloodOptions {
  readonly port: number;
  readonly hello: CapturedClientHello;
  readonly sourceAddresses: readonly string[];
  readonly attemptsPerAddressPerMinute: number;
  readonly durationMs: number;
  readonly answerTimeoutMs: number;
}

/** Runs one flood: every address paced evenly (their phases spread), bounded by count and time. */
export async function runHandshakeFlood(options: FloodOptions): Promise<FloodCounts> {
  const intervalMs = 60_000 / options.attemptsPerAddressPerMinute;
  const attemptsPerAddress = Math.floor(options.durationMs / intervalMs);
  const startedAt = performance.now();
  const attempts: Promise<{ outcome: AttemptOutcome; alert?: string }>[] = [];
  const pace = async (localAddress: string, index: number) => {
    const phaseMs = (intervalMs * index) / options.sourceAddresses.length;
    for (let attempt = 0; attempt < attemptsPerAddress; attempt++) {
      const due = startedAt + phaseMs + attempt * intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await delay(wait);
      attempts.push(attemptHandshake(options, localAddress));
    }
  };
  await Promise.all(options.sourceAddresses.map(pace));
  const settled = await Promise.all(attempts);
  const count = (outcome: AttemptOutcome) => settled.filter((result) => result.outcome === outcome).length;
  const alerts: Record<string, number> = {};
  for (const { alert } of settled) if (alert !== undefined) alerts[alert] = (alerts[alert] ?? 0) + 1;
  return {
    attempted: settled.length,
    answered: count('answered'),
    refused: count('refused'),
    dropped: count('dropped'),
    unanswered: count('unanswered'),
    alerts,
    durationMs: performance.now() - startedAt,
  };
}

/** One connection: the replayed ClientHello, then the first telling record of the answer. */
function attemptHandshake(
  options: FloodOptions,
  localAddress: string,
): Promise<{ outcome: AttemptOutcome; alert?: string }> {
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    const socket = connect({ host: '127.0.0.1', port: options.port, localAddress }, () =>
      socket.write(withFreshRandom(options.hello)),
    );
    const finish = (outcome: AttemptOutcome, alert?: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(alert === undefined ? { outcome } : { outcome, alert });
    };
    const timer = setTimeout(() => finish('unanswered'), options.answerTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      // Walk the complete records: the plaintext ServerHello and change_cipher_spec come first.
      let offset = 0;
      while (received.length - offset >= RECORD_HEADER_BYTES) {
        const type = received[offset];
        if (type === RECORD_TYPE_APPLICATION_DATA) return finish('answered');
        if (type === RECORD_TYPE_ALERT && received.length - offset > ALERT_DESCRIPTION_OFFSET) {
          const code = received[offset + ALERT_DESCRIPTION_OFFSET]!;
          return finish('refused', ALERT_NAMES[code] ?? `alert ${code}`);
        }
        const end = offset + RECORD_HEADER_BYTES + received.readUInt16BE(offset + 3);
        if (end > received.length) return;
        offset = end;
      }
    });
    // A reset (ECONNRESET) or a close before any answer: both are "dropped".
    socket.on('error', () => finish('dropped'));
    socket.on('close', () => finish('dropped'));
  });
}
