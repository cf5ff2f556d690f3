/**
 * The relay's listener ports when its configuration names none. `dmz-pki init` writes the
 * enrollment port into the enrollment URL it defaults to, so the two cannot disagree.
 */
export const DEFAULT_PORTS = {
  /** Agents' mTLS WebSocket connections. */
  agents: 8443,
  /** Enrollment (server-only TLS): the agent port's neighbour, one firewall rule range for both. */
  enrollment: 8444,
  /** Metrics and health, on loopback only. */
  admin: 9443,
} as const;
