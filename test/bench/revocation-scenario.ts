/**
 * Scenario B: `dmz-pki revoke` while a slow client holds the enrollment port. The relay is the
 * production `dmz-relay` in `auto` enrollment mode (the port listens only while a token is
 * outstanding). An agent enrolls and stays connected; a slowloris client attaches to the
 * enrollment port; the last outstanding token is revoked, so the relay closes that port; then the
 * agent is revoked. Measured: how long until its live connection is cut, whether its certificate
 * gets in again, and how long the relay takes to exit on SIGTERM with a slow client attached.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { connect } from 'node:tls';
import { RelayLink } from '../../agents/link/relay-link.ts';
import type { AgentCredentialSet } from '../../agents/credentials.ts';
import { MIN_TLS_VERSION } from '../../relay/protocol/limits.ts';
import { tcpConnectOutcome } from '../support/ports.ts';
import { REVOCATION, SLOW_ENROLLMENT } from './attack-settings.ts';
import { enrollWithToken, type PkiCli } from './pki-cli.ts';
import { findFreePort, waitForPort, type ChildProcessGroup } from './processes.ts';
import { connectWithCredentials } from './relay-agents.ts';
import { startRelayCommandChild } from './relay-child.ts';
import { SlowEnrollmentClient, type SlowClientEnd } from './slow-enrollment-client.ts';
import { STARTUP_TIMEOUT_MS } from './settings.ts';

const VICTIM_NAME = 'victim';
/** Loopback round trips take well under a millisecond: a refusal after the handshake arrives long before this. */
const VERDICT_WAIT_MS = 500;
/** After the relay is gone, the slow client's socket sees the close within this. */
const SLOW_CLIENT_END_WAIT_MS = 2_000;
const SPARE_NAMES = ['spare', 'spare-2'] as const;

export interface ReconnectOutcome {
  /** The relay let the revoked certificate in (it must not). */
  readonly admitted: boolean;
  /** The error that ended the attempt, when it was refused. */
  readonly detail: string;
}

export interface RevocationResults {
  /** After `token revoke` left no token outstanding: when the port stopped accepting (undefined: not within the bound). */
  readonly listenerClosedAfterMs: number | undefined;
  /** The slow client was still attached when `dmz-pki revoke` ran. */
  readonly slowClientAttachedAtRevoke: boolean;
  /** `dmz-pki revoke` from spawn to exit. */
  readonly revokeCommandMs: number;
  /** (a) The store's revoked_at to the victim's connection closing; undefined: not within REVOCATION.cutTimeoutMs. */
  readonly commitToCutMs: number | undefined;
  /** (b) The spawn of `dmz-pki revoke` to the cut. */
  readonly commandStartToCutMs: number | undefined;
  /** The close code and reason the victim saw. */
  readonly cutBy: string | undefined;
  /**
   * A TLS handshake alone with the revoked certificate, REVOCATION.earlyReconnectAfterMs after the
   * command exited ("rejected at the next handshake"). No WebSocket: a full connection of the same
   * agent would replace the victim's and end it, which is not the cut being measured.
   */
  readonly handshakeEarly: ReconnectOutcome;
  /** (c) A full connection (TLS, hello, welcome) with the revoked certificate once the cut was seen or its wait gave up. */
  readonly reconnectAfterCut: ReconnectOutcome;
  /** How the first slow client's connection ended. */
  readonly firstSlowClient: SlowClientEnd | undefined;
  /** (d) SIGTERM to exit with a slow client attached; undefined: not within the bound. */
  readonly terminateMs: number | undefined;
  /** How long that slow client had been attached at SIGTERM. */
  readonly terminateSlowClientAttachedMs: number;
  /** How its connection ended (its afterMs counts from its attach, not from SIGTERM). */
  readonly terminateSlowClientEnd: SlowClientEnd | undefined;
  /** Whether (d) had to attach a second slow client (the first one was gone), with a third token. */
  readonly terminateWithFreshSlowClient: boolean;
}

export async function runRevocationScenario(
  group: ChildProcessGroup,
  workDir: string,
  cli: PkiCli,
  progress: (message: string) => void,
): Promise<RevocationResults> {
  const enrollmentPort = await findFreePort();
  const relay = await startRelayCommandChild(group, {
    workDir,
    name: 'relay-revocation',
    stateDir: cli.stateDir,
    trustDomain: cli.trustDomain,
    enrollment: { port: enrollmentPort, mode: 'auto' },
  });
  const slowClients: SlowEnrollmentClient[] = [];
  try {
    progress('revocation: two tokens, enrolling the victim, connecting it');
    const [victimToken, spareToken] = await Promise.all([
      cli.createToken(VICTIM_NAME, 'ot', enrollmentPort),
      cli.createToken(SPARE_NAMES[0], 'ot', enrollmentPort),
    ]);
    await waitForPort(enrollmentPort, STARTUP_TIMEOUT_MS);
    const credentials = await enrollWithToken(workDir, VICTIM_NAME, victimToken.token);
    let cutAt: { at: number; atEpochMs: number; by: string } | undefined;
    let cut: () => void = () => undefined;
    const cutSeen = new Promise<void>((resolve) => (cut = resolve));
    await connectWithCredentials(relay.url, credentials, {
      closed: (code, reason) => {
        cutAt = { at: performance.now(), atEpochMs: Date.now(), by: `${code} ${reason}`.trim() };
        cut();
      },
    });

    progress('revocation: a slow client on the enrollment port, then the last token revoked');
    const first = await SlowEnrollmentClient.attach(enrollmentPort);
    slowClients.push(first);
    let firstEnd: SlowClientEnd | undefined;
    void first.ended.then((end) => (firstEnd = end));
    await delay(SLOW_ENROLLMENT.settleMs);
    const tokenRevokedAt = performance.now();
    await cli.revokeToken(spareToken.jti);
    const listenerClosedAfterMs = await waitForRefusal(enrollmentPort, tokenRevokedAt);

    progress(
      `revocation: dmz-pki revoke ${VICTIM_NAME}; waiting up to ${REVOCATION.cutTimeoutMs / 1000} s for the cut`,
    );
    const slowClientAttachedAtRevoke = first.attached;
    const revocation = await cli.revokeAgent(VICTIM_NAME);
    const giveUpAt = revocation.startedAt + REVOCATION.cutTimeoutMs;
    await delay(REVOCATION.earlyReconnectAfterMs);
    const handshakeEarly = await probeHandshake(relay.agentPort, credentials);
    await Promise.race([cutSeen, delay(Math.max(0, giveUpAt - performance.now()))]);
    // A later close is not the cut: a revoked certificate let in again replaces the live connection.
    const cutInTime = cutAt;
    const reconnectAfterCut = await tryReconnect(relay.url, credentials);

    progress('revocation: SIGTERM to the relay with a slow client attached');
    const terminateWithFreshSlowClient = !first.attached;
    if (terminateWithFreshSlowClient) {
      await cli.createToken(SPARE_NAMES[1], 'ot', enrollmentPort);
      await waitForPort(enrollmentPort, STARTUP_TIMEOUT_MS);
      slowClients.push(await SlowEnrollmentClient.attach(enrollmentPort));
      await delay(SLOW_ENROLLMENT.settleMs);
    }
    const attached = slowClients.at(-1)!;
    const terminateSlowClientAttachedMs = performance.now() - attached.attachedAt;
    const terminateMs = await relay.terminate(REVOCATION.terminateTimeoutMs);
    // Its socket closes as soon as the relay is gone (exited, or killed past the bound).
    const terminateSlowClientEnd = await Promise.race([
      attached.ended,
      delay(SLOW_CLIENT_END_WAIT_MS, undefined),
    ]);
    return {
      listenerClosedAfterMs,
      slowClientAttachedAtRevoke,
      revokeCommandMs: revocation.exitedAt - revocation.startedAt,
      commitToCutMs: cutInTime === undefined ? undefined : cutInTime.atEpochMs - revocation.revokedAtEpochMs,
      commandStartToCutMs: cutInTime === undefined ? undefined : cutInTime.at - revocation.startedAt,
      cutBy: cutInTime?.by,
      handshakeEarly,
      reconnectAfterCut,
      firstSlowClient: firstEnd,
      terminateMs,
      terminateSlowClientAttachedMs,
      terminateSlowClientEnd,
      terminateWithFreshSlowClient,
    };
  } finally {
    for (const client of slowClients) client.stop();
    // Already gone after a run to the end; the victim's connection goes with it.
    await relay.terminate(REVOCATION.terminateTimeoutMs);
  }
}

/**
 * Polls the enrollment port until a TCP connection is refused (the relay stopped listening), from
 * `since`; undefined if it still accepts after SLOW_ENROLLMENT.listenerCloseTimeoutMs.
 */
async function waitForRefusal(port: number, since: number): Promise<number | undefined> {
  const deadline = since + SLOW_ENROLLMENT.listenerCloseTimeoutMs;
  while (performance.now() < deadline) {
    if ((await tcpConnectOutcome('127.0.0.1', port)) === 'ECONNREFUSED') return performance.now() - since;
    await delay(SLOW_ENROLLMENT.listenerPollMs);
  }
  return undefined;
}

/**
 * A TLS handshake with the agent's certificate and nothing after it: admitted if the relay keeps
 * the connection for VERDICT_WAIT_MS after the client's Finished (in TLS 1.3 the server judges the
 * client certificate after that, and a refusal arrives as an alert or a close within milliseconds).
 */
function probeHandshake(port: number, agent: AgentCredentialSet): Promise<ReconnectOutcome> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      cert: agent.certPem,
      key: agent.keyPem,
      ca: agent.caPem,
      minVersion: MIN_TLS_VERSION,
    });
    let verdict: NodeJS.Timeout | undefined;
    const finish = (admitted: boolean, detail: string) => {
      clearTimeout(timer);
      clearTimeout(verdict);
      socket.destroy();
      resolve({ admitted, detail });
    };
    const timer = setTimeout(() => finish(false, 'no TLS handshake in time'), REVOCATION.reconnectTimeoutMs);
    socket.once('secureConnect', () => {
      verdict = setTimeout(() => finish(true, 'TLS handshake accepted'), VERDICT_WAIT_MS);
    });
    socket.once('error', (error: Error) => finish(false, error.message));
    socket.once('close', () => finish(false, 'closed by the relay after the handshake'));
  });
}

/** A full connection with the revoked certificate: welcomed (then closed), or why not. */
async function tryReconnect(url: string, agent: AgentCredentialSet): Promise<ReconnectOutcome> {
  try {
    const client = await RelayLink.connect({
      url,
      certPem: agent.certPem,
      keyPem: agent.keyPem,
      caPem: agent.caPem,
      software: 'dmz-bench',
      connectTimeoutMs: REVOCATION.reconnectTimeoutMs,
    });
    await client.close();
    return { admitted: true, detail: 'welcomed' };
  } catch (error) {
    return { admitted: false, detail: error instanceof Error ? error.message : String(error) };
  }
}
