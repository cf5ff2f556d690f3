/**
 * A real CA state directory, made as `dmz-pki init` makes it, and agents enrolled against it in
 * process (a token recorded in the store, then redeemed with a CSR), for tests that run the relay
 * on its own CA without the enrollment port.
 */
import {
  prepareCredentialDirectory,
  readEnrolledIdentity,
  storeCredentials,
} from '../../agents/credentials.ts';
import { CertificateIssuer } from '../../pki/issuance.ts';
import { createCertificateSigningRequest } from '../../pki/csr.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair } from '../../pki/keys.ts';
import { initializeState, openState } from '../../pki/state.ts';
import { createEnrollmentToken, DEFAULT_TOKEN_TTL_SECONDS } from '../../pki/tokens.ts';
import type { Role } from '../../relay/protocol/identity.ts';
import { pino, type Logger } from 'pino';
import { createAuditLog } from '../../relay/server/audit.ts';
import { validateRelayConfig } from '../../relay/server/config.ts';
import { startRelay, type RunningRelay } from '../../relay/server/relay.ts';
import { AuditRecorder } from './relay-harness.ts';

export const CA_STATE_TRUST_DOMAIN = 'plant.test';
/** Tokens must name somewhere to enroll; these tests redeem them in process, never there. */
const UNUSED_ENROLLMENT_URL = 'https://127.0.0.1:8444';

export interface EnrolledAgent {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
  /** Lower-case hex, as the store keeps it. */
  readonly serialHex: string;
}

/**
 * A fresh CA in `stateDir` whose relay certificate is valid for 127.0.0.1 and localhost; its keys
 * encrypted under `passphrase` when one is given.
 */
export async function createCaState(stateDir: string, options: { passphrase?: string } = {}): Promise<void> {
  await initializeState({
    stateDir,
    trustDomain: CA_STATE_TRUST_DOMAIN,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    enrollmentUrls: [UNUSED_ENROLLMENT_URL],
    caKeyBits: 2048,
    ...options,
  });
}

export interface EnrollOptions {
  /**
   * The lifetime of the certificate issued (default: the CA's default). Renewal tests pick one
   * whose renewal falls due within seconds (agents/renewal.ts), as a relay configured with a short
   * `pki.agentCertificateLifetime` would issue it.
   */
  readonly lifetimeMs?: number;
  /** The CA key's passphrase, for a state made with one. */
  readonly passphrase?: string;
}

/**
 * Enrolls `name` the way the enrollment listener does (token verified, consumed, certificate
 * recorded), through a store connection of its own, as another process would.
 */
export async function enrollInProcess(
  stateDir: string,
  role: Role,
  name: string,
  options: EnrollOptions = {},
): Promise<EnrolledAgent> {
  const state = await openState(stateDir);
  try {
    const issuer = new CertificateIssuer(state, await state.loadCa(options.passphrase), options.lifetimeMs);
    const { token, jti, expiresAt } = await createEnrollmentToken({
      signingKeyPem: await state.loadTokenSigningKey(options.passphrase),
      issuer: state.tokenIssuer,
      name,
      role,
      ttlSeconds: DEFAULT_TOKEN_TTL_SECONDS,
      urls: [UNUSED_ENROLLMENT_URL],
      caFingerprint: state.caFingerprint,
    });
    state.store.recordToken({ jti, name, role, createdAt: new Date(), expiresAt });
    const keys = await generateRsaKeyPair(AGENT_KEY_BITS);
    const issued = await issuer.enroll(token, createCertificateSigningRequest({ ...keys, commonName: name }));
    return {
      certPem: issued.certPem,
      keyPem: keys.privateKeyPem,
      caPem: issued.caPem,
      serialHex: issued.serialHex,
    };
  } finally {
    state.close();
  }
}

/**
 * Enrolls `name` in process and stores the result in the credential directory `dir` (created
 * 0700), as `dmz-agent enroll --dir` leaves it, for an agent to run with.
 */
export async function enrollIntoDirectory(
  stateDir: string,
  role: Role,
  name: string,
  dir: string,
  options: EnrollOptions = {},
): Promise<void> {
  const enrolled = await enrollInProcess(stateDir, role, name, options);
  await prepareCredentialDirectory(dir, { force: false });
  await storeCredentials(dir, { ...enrolled, identity: readEnrolledIdentity(enrolled) });
}

/**
 * The relay on a CA state directory, as `dmz-relay` runs it (its own CA, revocation watch,
 * enrollment port in `mode`), on loopback port 0 (or `agentPort`, to restart a relay where its
 * agents knew it), its debug log silent unless `log` is given, and its audit recorded.
 */
export async function startCaStateRelay(
  stateDir: string,
  options: {
    enrollment?: 'auto' | 'on' | 'off';
    crlValidity?: string;
    agentPort?: number;
    log?: Logger;
  } = {},
): Promise<{ relay: RunningRelay; audit: AuditRecorder }> {
  const config = validateRelayConfig(
    {
      trustDomain: CA_STATE_TRUST_DOMAIN,
      state: stateDir,
      listen: {
        agents: { host: '127.0.0.1', port: options.agentPort ?? 0 },
        admin: { host: '127.0.0.1', port: 0 },
        enrollment: { host: '127.0.0.1', port: 0, mode: options.enrollment ?? 'off' },
      },
      pki: { crlValidity: options.crlValidity ?? '1d' },
      log: { level: 'silent' },
      policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'] }],
    },
    stateDir,
  );
  const audit = new AuditRecorder();
  const relay = await startRelay({
    config,
    audit: createAuditLog(audit.stream),
    log: options.log ?? pino({ level: 'silent' }),
  });
  return { relay, audit };
}
