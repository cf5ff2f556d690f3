/**
 * A revoked agent's status says so. The relay names the revocation once, when it cuts the live
 * link (RELAY_ERR_REVOKED); every handshake after fails at TLS with no reason ("socket hang up").
 * `dmz-agent status` keeps showing the revocation, with what to do, until a connection succeeds:
 * here, after the agent is enrolled again into its credential directory, which the running agent
 * picks up at its next attempt.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runAgentCli } from '../../../agents/cli.ts';
import {
  prepareCredentialDirectory,
  readEnrolledIdentity,
  storeCredentials,
} from '../../../agents/credentials.ts';
import type { Agent } from '../../../agents/runtime/agent.ts';
import { createAgentPlant, readAgentStatus, simulatorAgent, startAgent } from '../../support/agent-plant.ts';
import type { AgentPlant } from '../../support/agent-plant.ts';
import { enrollInProcess } from '../../support/ca-state.ts';
import { captureOutput } from '../../support/cli-output.ts';
import { runPki } from '../../support/pki-cli.ts';
import { waitFor } from '../../support/wait.ts';

/** Connects, revocations and status writes (every 2 s) all land within seconds. */
const BOUND_MS = 15_000;

describe('dmz-agent status - a revoked agent', () => {
  let plant: AgentPlant;
  let agent: Agent;
  let credentials: string;
  let configFile: string;
  let state: string;
  const caState = () => join(plant.dir, 'relay-state');

  before(async () => {
    // The refused agent retries every 500 ms at most here (agent-plant's backoff): more than the
    // relay's default 120 attempts a minute from one address would let through a re-enrollment.
    plant = await createAgentPlant({ limits: { connectionAttemptsPerMinute: 10_000 } });
    credentials = await plant.enroll('ot', 'press-7');
    state = join(plant.dir, 'ot-state');
    const raw = simulatorAgent(credentials, state, { points: [{ name: 'temp', signal: 'sine' }] });
    configFile = await plant.configFile('agent.yaml', raw);
    agent = await startAgent(plant.config(raw));
  });
  after(async () => {
    await agent?.stop();
    await plant?.close();
  });

  async function statusScreen(): Promise<string> {
    const run = captureOutput();
    const code = await runAgentCli(['status', '--config', configFile], {}, run.output);
    assert.equal(code, 0, run.stderr());
    return run.stdout();
  }

  it('shows REVOKED and how to enroll again, also after handshakes that give no reason', async () => {
    await waitFor(() => agent.status().relay.connected, 'the agent connected', BOUND_MS);
    const revoked = await runPki(['--state', caState(), 'revoke', 'press-7', '--reason', 'test']);
    assert.equal(revoked.code, 0, revoked.stderr);
    await waitFor(
      () => agent.status().relay.lastRefusal?.code === 'RELAY_ERR_REVOKED',
      'the refusal recorded',
      BOUND_MS,
    );
    const connects = agent.status().relay.connects;
    // Later attempts are refused at the TLS handshake, which says nothing of why.
    await waitFor(
      () => {
        const { relay } = agent.status();
        return relay.lastError !== undefined && !relay.lastError.includes('RELAY_ERR_REVOKED');
      },
      'an attempt after the cut',
      BOUND_MS,
    );
    assert.equal(agent.status().relay.connects, connects, 'no attempt got through');
    assert.equal(agent.status().relay.lastRefusal?.code, 'RELAY_ERR_REVOKED', 'still shown');
    await waitFor(
      async () => (await readAgentStatus(state))?.relay.lastRefusal !== undefined,
      'the refusal in status.json',
      BOUND_MS,
    );
    const screen = await statusScreen();
    assert.match(screen, /^ {2}REVOKED +the relay revoked this agent's certificate \(RELAY_ERR_REVOKED, /m);
    assert.ok(
      screen.includes(`dmz-agent enroll --token - --dir ${credentials} --force`),
      `the hint names the credential directory:\n${screen}`,
    );
  });

  it('clears it once the agent, enrolled again, connects', async () => {
    const enrolled = await enrollInProcess(caState(), 'ot', 'press-7');
    await prepareCredentialDirectory(credentials, { force: true });
    await storeCredentials(credentials, { ...enrolled, identity: readEnrolledIdentity(enrolled) });
    await waitFor(() => agent.status().relay.connected, 'connected with the new certificate', BOUND_MS).catch(
      (error: unknown) => {
        throw new Error(`not connected: ${JSON.stringify(agent.status().relay)}`, { cause: error });
      },
    );
    assert.equal(agent.status().relay.lastRefusal, undefined);
    await waitFor(
      async () => {
        const written = await readAgentStatus(state);
        return written?.relay.connected === true && written.relay.lastRefusal === undefined;
      },
      'status.json without the refusal',
      BOUND_MS,
    );
    assert.doesNotMatch(await statusScreen(), /REVOKED/);
  });
});
