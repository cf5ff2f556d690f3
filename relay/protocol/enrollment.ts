/**
 * The enrollment wire contract, shared by the relay's enrollment listener and `dmz-agent enroll`:
 * one HTTPS request `POST /v1/enroll` with a JSON body, one JSON answer. Defined once here so the
 * two sides cannot drift apart.
 */
import { Type, type Static } from '@sinclair/typebox';
import { MAX_PEM_BYTES, MAX_TOKEN_BYTES } from './limits.ts';

/** The path is part of the protocol; a token's URL names only the host and port to reach. */
export const ENROLLMENT_PATH = '/v1/enroll';

/**
 * A request is a token (<= 4 KiB) and a CSR (<= 16 KiB) plus JSON quoting (PEM newlines escaped,
 * a few hundred bytes): 32 KiB fits every honest request, and the relay reads no more than that
 * from an unauthenticated peer before refusing.
 */
export const MAX_ENROLLMENT_REQUEST_BYTES = 32 * 1024;

/**
 * An answer is two certificates of about 2 KiB each (RSA-3072 CA, RSA agent key). 64 KiB is far
 * above that and still small enough that a hostile endpoint cannot make the agent buffer much.
 */
export const MAX_ENROLLMENT_RESPONSE_BYTES = 64 * 1024;

export const EnrollmentRequestSchema = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: MAX_TOKEN_BYTES }),
    csr: Type.String({ minLength: 1, maxLength: MAX_PEM_BYTES }),
  },
  { additionalProperties: false },
);
export type EnrollmentRequest = Static<typeof EnrollmentRequestSchema>;

/** 200: the agent's certificate and the CA certificate it chains to, both PEM. */
export const EnrollmentResponseSchema = Type.Object(
  {
    certificate: Type.String({ minLength: 1, maxLength: MAX_PEM_BYTES }),
    ca: Type.String({ minLength: 1, maxLength: MAX_PEM_BYTES }),
  },
  { additionalProperties: false },
);
export type EnrollmentResponse = Static<typeof EnrollmentResponseSchema>;

/** Every other status: a stable code from the error catalog and its catalog message, nothing more. */
export const EnrollmentRefusalSchema = Type.Object(
  { code: Type.String(), message: Type.String() },
  { additionalProperties: false },
);
export type EnrollmentRefusal = Static<typeof EnrollmentRefusalSchema>;
