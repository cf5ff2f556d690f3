/**
 * The ports of the lab: the relay's two (its defaults, as relay.yaml and the rulesets ship them),
 * the Modbus device's, and the IT agent's local API (it-agent.nft's API_PORT).
 */
export const LAB_PORTS = {
  agent: 8443,
  enrollment: 8444,
  /** Modbus TCP (Modbus Messaging on TCP/IP Implementation Guide, 4.1: port 502). */
  modbus: 502,
  api: 8080,
  /** The relay's admin listener, on the appliance's loopback only. */
  admin: 9443,
} as const;
