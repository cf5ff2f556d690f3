/**
 * Scenario A: a handshake flood against the agent port while an honest OT -> IT pair runs. The
 * relay is the production `dmz-relay` with its own CA and the default limits; the honest agents
 * (and one more that connects in the middle of each flood) are enrolled through its enrollment port.
 * A quiet baseline window comes first, then one flood per key-exchange group, each measured the
 * same way: what the relay did with every attempt, its CPU time (/proc), and the honest pair's gaps.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { RelayLink } from '../../agents/link/relay-link.ts';
import type { AgentCredentialSet } from '../../agents/credentials.ts';
import { HANDSHAKE_FLOOD, HONEST_PAIR } from './attack-settings.ts';
import { captureClientHello, type TlsGroupName } from './client-hello.ts';
import { runHandshakeFlood, type FloodCounts } from './handshake-flood.ts';
import { HonestPair, type GapWindow } from './honest-pair.ts';
import { enrollWithToken, type PkiCli } from './pki-cli.ts';
import { findFreePort, readCpuSeconds, waitForPort, type ChildProcessGroup } from './processes.ts';
import { PUBLISHER_NAME } from './relay-agents.ts';
import { startRelayCommandChild, type RelayCommandChild } from './relay-child.ts';
import { STARTUP_TIMEOUT_MS } from './settings.ts';
import { attempt, type Outcome } from './stats.ts';

/** The groups flooded, in this order: the expensive one, then the cheap reference. */
export const FLOODED_GROUPS: readonly TlsGroupName[] = ['ffdhe8192', 'x25519'];
const SUBSCRIBER_NAME = 'bench-it';
const LATE_AGENT_NAME = 'bench-late';
const RELAY_STOP_TIMEOUT_MS = 10_000;

export interface CpuWindow {
  readonly seconds: number;
  /** Relay CPU time (user + system) in the window. */
  readonly relayCpuSeconds: number;
}

export interface FloodRun {
  readonly group: TlsGroupName;
  /** What the replayed ClientHello offers (IANA codes, checked to be the one group). */
  readonly offeredGroups: readonly number[];
  readonly counts: FloodCounts;
  readonly cpu: CpuWindow;
  /** Relay CPU in the window / (answered + refused); undefined when the relay answered nothing. */
  readonly relayCpuMsPerHandshake: number | undefined;
  /**
   * The same with the honest pair's own cost (the baseline's CPU rate x the window) taken out.
   * For a cheap handshake this is within the noise of that cost.
   */
  readonly netRelayCpuMsPerHandshake: number | undefined;
  readonly honestPair: GapWindow;
  /** A legitimate agent connecting in the middle of the flood: how long it took. */
  readonly legitimateConnect: Outcome<{ readonly ms: number }>;
}

export interface FloodScenarioResults {
  readonly baseline: { readonly cpu: CpuWindow; readonly honestPair: GapWindow };
  readonly floods: readonly (Outcome<FloodRun> & { readonly group: TlsGroupName })[];
}

export async function runFloodScenario(
  group: ChildProcessGroup,
  workDir: string,
  cli: PkiCli,
  progress: (message: string) => void,
): Promise<FloodScenarioResults> {
  const enrollmentPort = await findFreePort();
  const relay = await startRelayCommandChild(group, {
    workDir,
    name: 'relay-flood',
    stateDir: cli.stateDir,
    trustDomain: cli.trustDomain,
    enrollment: { port: enrollmentPort, mode: 'auto' },
  });
  let pair: HonestPair | undefined;
  try {
    progress('flood: enrolling the honest pair and a late agent through the enrollment port');
    const [publisher, subscriber, late] = await enrollAgents(workDir, cli, enrollmentPort, [
      [PUBLISHER_NAME, 'ot'],
      [SUBSCRIBER_NAME, 'it'],
      [LATE_AGENT_NAME, 'it'],
    ]);
    pair = await HonestPair.start(relay.url, publisher!, subscriber!);
    const honest = pair;

    progress(`flood: quiet baseline, ${HONEST_PAIR.baselineMs / 1000} s`);
    let baselineCpu: CpuWindow | undefined;
    const baselineGaps = await honest.measure(async () => {
      baselineCpu = await measureCpu(relay, () => delay(HONEST_PAIR.baselineMs));
    });
    const baseline = { cpu: baselineCpu!, honestPair: baselineGaps };

    const floods: FloodScenarioResults['floods'][number][] = [];
    for (const tlsGroup of FLOODED_GROUPS) {
      progress(
        `flood: ${tlsGroup}, ${HANDSHAKE_FLOOD.sourceAddresses.length} addresses x ` +
          `${HANDSHAKE_FLOOD.attemptsPerAddressPerMinute}/min for ${HANDSHAKE_FLOOD.durationMs / 1000} s`,
      );
      const run = await attempt(() => floodOnce(relay, honest, late!, tlsGroup, baseline.cpu));
      floods.push({ ...run, group: tlsGroup });
      await delay(HANDSHAKE_FLOOD.pauseMs);
    }
    return { baseline, floods };
  } finally {
    await pair?.close();
    await relay.terminate(RELAY_STOP_TIMEOUT_MS);
  }
}

async function floodOnce(
  relay: RelayCommandChild,
  pair: HonestPair,
  late: AgentCredentialSet,
  tlsGroup: TlsGroupName,
  baseline: CpuWindow,
): Promise<FloodRun> {
  const hello = await captureClientHello(tlsGroup);
  let counts: FloodCounts | undefined;
  let cpu: CpuWindow | undefined;
  let legitimateConnect: Outcome<{ ms: number }> | undefined;
  const honestPair = await pair.measure(async () => {
    cpu = await measureCpu(relay, async () => {
      const legitimate = delay(HANDSHAKE_FLOOD.legitimateConnectAfterMs).then(() =>
        attempt(() => timeConnect(relay.url, late)),
      );
      counts = await runHandshakeFlood({ port: relay.agentPort, hello, ...HANDSHAKE_FLOOD });
      legitimateConnect = await legitimate;
      await delay(HANDSHAKE_FLOOD.tailMs);
    });
  });
  const handled = counts!.answered + counts!.refused;
  const netCpuSeconds = cpu!.relayCpuSeconds - (baseline.relayCpuSeconds / baseline.seconds) * cpu!.seconds;
  return {
    group: tlsGroup,
    offeredGroups: hello.offeredGroups,
    counts: counts!,
    cpu: cpu!,
    relayCpuMsPerHandshake: handled === 0 ? undefined : (cpu!.relayCpuSeconds * 1000) / handled,
    netRelayCpuMsPerHandshake: handled === 0 ? undefined : (Math.max(0, netCpuSeconds) * 1000) / handled,
    honestPair,
    legitimateConnect: legitimateConnect!,
  };
}

/** The relay's CPU time while `during` runs, read from /proc before and after. */
async function measureCpu(relay: RelayCommandChild, during: () => Promise<unknown>): Promise<CpuWindow> {
  const cpuBefore = readCpuSeconds(relay.pid);
  const startedAt = performance.now();
  await during();
  return {
    seconds: (performance.now() - startedAt) / 1000,
    relayCpuSeconds: readCpuSeconds(relay.pid) - cpuBefore,
  };
}

/** Connect (TLS with its certificate, hello, welcome) and close: the connect time in ms. */
async function timeConnect(url: string, agent: AgentCredentialSet): Promise<{ ms: number }> {
  const startedAt = performance.now();
  const client = await RelayLink.connect({
    url,
    certPem: agent.certPem,
    keyPem: agent.keyPem,
    caPem: agent.caPem,
    software: 'dmz-bench',
    connectTimeoutMs: STARTUP_TIMEOUT_MS,
  });
  const ms = performance.now() - startedAt;
  await client.close();
  return { ms };
}

/** One token per agent from `dmz-pki token create`, then each enrolls, all at once. */
async function enrollAgents(
  workDir: string,
  cli: PkiCli,
  enrollmentPort: number,
  agents: readonly (readonly [string, 'ot' | 'it'])[],
): Promise<AgentCredentialSet[]> {
  const tokens = await Promise.all(agents.map(([name, role]) => cli.createToken(name, role, enrollmentPort)));
  await waitForPort(enrollmentPort, STARTUP_TIMEOUT_MS);
  return Promise.all(agents.map(([name], index) => enrollWithToken(workDir, name, tokens[index]!.token)));
}
