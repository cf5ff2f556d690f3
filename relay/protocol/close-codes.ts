/**
 * WebSocket close codes the relay uses (RFC 6455 section 7.4). The close reason always carries
 * the error code from errors.ts, so an agent can tell why without parsing prose.
 */
export const CLOSE_CODE = {
  /** RFC 6455 7.4.1: endpoint going away (relay shutdown). */
  goingAway: 1001,
  /** RFC 6455 7.4.1: protocol error (malformed frame, frame before hello). */
  protocolError: 1002,
  /** RFC 6455 7.4.1: policy violation (revoked, no longer permitted, bad identity). */
  policyViolation: 1008,
  /** RFC 6455 7.4.1: message too big. */
  messageTooBig: 1009,
  /** RFC 6455 7.4.1: unexpected condition on the server. */
  internalError: 1011,
  /** IANA registry: try again later (rate limited, too slow to keep up). */
  tryAgainLater: 1013,
  /** Private use (4000-4999): a newer connection of the same agent replaced this one. */
  replaced: 4000,
  /** Private use: the connection's lease lapsed (no frame from the agent within the lease). */
  leaseExpired: 4001,
} as const;

export type CloseCode = (typeof CLOSE_CODE)[keyof typeof CLOSE_CODE];
