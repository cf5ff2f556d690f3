import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadCredentials } from '../../../agents/credentials.ts';
import { RENEW_AT_FRACTION } from '../../../agents/renewal.ts';
import type { Agent } from '../../../agents/runtime/agent.ts';
import { CLOCK_SKEW_BACKDATE_MS } from '../../../pki/authority.ts';
import { normalizeSerialHex } from '../../../pki/serial.ts';
import {
  assertEveryPointInSink,
  createAgentPlant,
  fileConsumerAgent,
  simulatorAgent,
  startAgent,
  type AgentPlant,
} from '../../support/agent-plant.ts';
import { waitFor } from '../../support/wait.ts';

/**
 * A certificate whose renewal falls due about this long after it is issued. Its validity starts
 * CLOCK_SKEW_BACKDATE_MS early, and renewal is due RENEW_AT_FRACTION into it (plus or minus 5%
 * jitter), so a lifetime of ~33 s puts it ~2 s after issue: the agents renew in production, on
 * their own schedule, with nothing faked.
 */
const DUE_AFTER_ISSUE_MS = 2_000;
const VALIDITY_MS = (DUE_AFTER_ISSUE_MS + CLOCK_SKEW_BACKDATE_MS) / RENEW_AT_FRACTION;
const LIFETIME_MS = Math.round(VALIDITY_MS - CLOCK_SKEW_BACKDATE_MS);
/** 5,000 readings at 2 ms: the source runs 10 s, past the latest renewal (due at most ~7 s in). */
const READINGS = 5_000;
const TOPICS = ['temp', 'count'].map((point) => `press-9/line1/${point}`);

describe('dmz-agent run: certificate renewal in production', () => {
  let plant: AgentPlant;

  before(async () => {
    plant = await createAgentPlant();
  });
  after(() => plant.close());

  it('renews, stores and reconnects with the new certificate, losing and duplicating no point', async (t) => {
    const sinkDir = join(plant.dir, 'historian-sink');
    const otCredentials = await plant.enroll('ot', 'press-9', { lifetimeMs: LIFETIME_MS });
    const itCredentials = await plant.enroll('it', 'historian', { lifetimeMs: LIFETIME_MS });
    const enrolled = new Map([
      ['press-9', (await loadCredentials(otCredentials)).identity],
      ['historian', (await loadCredentials(itCredentials)).identity],
    ]);
    const agents: Agent[] = [];
    try {
      agents.push(
        await startAgent(
          plant.config(
            simulatorAgent(otCredentials, join(plant.dir, 'press-9-state'), {
              interval: '2ms',
              batch: 5,
              limit: READINGS,
              points: [
                { name: 'temp', signal: 'sine', period: '1s', min: 20, max: 80 },
                { name: 'count', signal: 'ramp', min: 0, max: 100_000, step: 1 },
              ],
            }),
          ),
        ),
        await startAgent(
          plant.config(
            fileConsumerAgent(itCredentials, join(plant.dir, 'historian-state'), sinkDir, 'press-9'),
          ),
        ),
      );

      // Both renew while the source runs: the move to the new certificate happens mid-stream.
      const [press, historian] = agents as [Agent, Agent];
      const loggedAtRenewal = new Map<string, number>();
      await waitFor(
        () => {
          for (const agent of agents) {
            const { name, certificate } = agent.status();
            if (!loggedAtRenewal.has(name) && certificate.serial !== enrolled.get(name)?.serial)
              loggedAtRenewal.set(name, press.status().ot?.pointsLogged ?? 0);
          }
          return loggedAtRenewal.size === agents.length;
        },
        'both agents renewed',
        20_000,
      );
      for (const [name, logged] of loggedAtRenewal) {
        assert.ok(logged < TOPICS.length * READINGS, `${name} renewed while points still flowed`);
      }

      for (const [agent, dir] of [
        [press, otCredentials],
        [historian, itCredentials],
      ] as const) {
        const old = enrolled.get(agent.status().name);
        assert.ok(old !== undefined);
        const { name } = old;
        // Renewed: a new certificate in the status, for the relay's full lifetime.
        const renewed = agent.status().certificate;
        assert.ok(
          Date.parse(renewed.notAfter) > Date.parse(old.notAfter) + 86_400_000,
          `${name}: a long-lived successor`,
        );
        // ...stored in its credential directory, crash-safely, for the next start.
        const stored = await loadCredentials(dir);
        assert.equal(stored.identity.serial, renewed.serial, `${name}: credential directory`);
        const certificate = new X509Certificate(await readFile(join(dir, 'cert.pem'), 'utf8'));
        assert.equal(normalizeSerialHex(certificate.serialNumber), normalizeSerialHex(renewed.serial));
        // ...and the relay saw it renew, then the agent come back with the new certificate.
        const serial = normalizeSerialHex(renewed.serial);
        await plant.audit.waitFor(
          (entry) =>
            entry.event === 'certificate.renewed' &&
            entry['agent'] === name &&
            entry['previousSerial'] === normalizeSerialHex(old.serial) &&
            entry['serial'] === serial,
          `${name}: certificate.renewed`,
        );
        await waitFor(
          () =>
            plant.audit.entries.find(
              (entry) =>
                entry.event === 'agent.connected' && entry['agent'] === name && entry['serial'] === serial,
            ),
          `${name} connected with serial ${serial}`,
          10_000,
        );
        // The relay records the connection before the agent has its welcome.
        await waitFor(() => agent.status().relay.connects >= 2, `${name} reconnected to move to it`);
        t.diagnostic(`${name}: serial ${old.serial} -> ${renewed.serial}, expires ${renewed.notAfter}`);
      }

      await assertEveryPointInSink(sinkDir, TOPICS, READINGS);
    } finally {
      await Promise.all(agents.map((agent) => agent.stop()));
    }
  });
});
