/**
 * One enrollment exchange over a connection already verified against the pinned CA: the token
 * and CSR go out as JSON (relay/protocol/enrollment.ts), and the relay's answer comes back as a
 * certificate or as a DmzError with the relay's stable code.
 */
import { request } from 'node:http';
import { Value } from '@sinclair/typebox/value';
import {
  ENROLLMENT_PATH,
  EnrollmentRefusalSchema,
  EnrollmentResponseSchema,
  MAX_ENROLLMENT_RESPONSE_BYTES,
  type EnrollmentRequest,
  type EnrollmentResponse,
} from '../relay/protocol/enrollment.ts';
import { DmzError, isErrorCode } from '../relay/protocol/errors.ts';
import type { PinnedConnection, PinnedEndpoint } from './ca-pinning.ts';

/**
 * Sends `body` on the verified socket and reads the one answer; the socket is closed afterwards.
 * The request goes over that socket only: `createConnection` hands it to the HTTP client, which
 * therefore never opens a connection of its own.
 */
export function exchangeEnrollment(options: {
  connection: PinnedConnection;
  endpoint: PinnedEndpoint;
  body: EnrollmentRequest;
  timeoutMs: number;
}): Promise<EnrollmentResponse> {
  const { connection, endpoint, timeoutMs } = options;
  const payload = JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const fail = (reason: string, cause?: unknown) => {
      connection.socket.destroy();
      reject(new DmzError('PKI_ERR_ENROLLMENT_FAILED', `enrollment request failed: ${reason}`, { cause }));
    };
    const outgoing = request({
      createConnection: () => connection.socket,
      method: 'POST',
      host: endpoint.host,
      port: endpoint.port,
      path: ENROLLMENT_PATH,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        accept: 'application/json',
      },
      timeout: timeoutMs,
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    outgoing.on('error', (error) => fail(error.message, error));
    outgoing.on('response', (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.byteLength;
        if (size > MAX_ENROLLMENT_RESPONSE_BYTES) {
          outgoing.destroy(new Error(`answer exceeds ${MAX_ENROLLMENT_RESPONSE_BYTES} bytes`));
        } else {
          chunks.push(chunk);
        }
      });
      response.on('error', (error) => fail(error.message, error));
      response.on('end', () => {
        connection.socket.destroy();
        try {
          resolve(decodeAnswer(response.statusCode ?? 0, Buffer.concat(chunks)));
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    outgoing.end(payload);
  });
}

/** 200 with a certificate, or a refusal whose code we know; anything else is a failure. */
function decodeAnswer(status: number, bytes: Buffer): EnrollmentResponse {
  let answer: unknown;
  try {
    answer = JSON.parse(bytes.toString('utf8'));
  } catch {
    answer = undefined;
  }
  if (status === 200 && Value.Check(EnrollmentResponseSchema, answer)) return answer;
  if (status !== 200 && Value.Check(EnrollmentRefusalSchema, answer) && isErrorCode(answer.code)) {
    // Our catalog's message for the code: the relay's text is not shown as if it were ours.
    throw new DmzError(answer.code);
  }
  throw new DmzError('PKI_ERR_ENROLLMENT_FAILED', `relay answered HTTP ${status} without a usable body`);
}
