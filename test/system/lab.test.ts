/**
 * The three-zone lab (deploy/lab): OT, DMZ and IT hosts in network namespaces behind a router that
 * forwards everything, each host with its shipped nftables ruleset, the relay in the DMZ, an OT
 * agent reading Debian's pymodbus server, an IT agent with a JSON Lines sink and its local API, and
 * an IT desk (a workstation with no firewall). It proves the product's network claims the way an
 * auditor would check them, and prints the evidence as `lab:` lines (every nmap result with where
 * its probes were dropped, what listens where, each refused connection, the API's answers).
 *
 * Run by `npm run test:lab` as root (in .ci/run), not by `npm test`. Skipped, saying why, where it
 * cannot run (not root, a tool missing); under CI a skip is a failure, since these are the tests of
 * the network claims SECURITY.md makes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  closeEnrollment,
  enrollmentSources,
  openEnrollment,
  policyDrops,
  reloadFirewall,
} from '../../deploy/lab/firewalls.ts';
import { callItApi } from '../../deploy/lab/it-api.ts';
import { labProblem, startLab, type Lab } from '../../deploy/lab/lab.ts';
import { IT_AGENT, OT_AGENT, PLC_REGISTERS, PLC_TOPICS } from '../../deploy/lab/configs.ts';
import { sinkValues } from '../../deploy/lab/plant.ts';
import { LAB_PORTS } from '../../deploy/lab/ports.ts';
import { scanAllPorts, sendSpoofedSyns, type PortScan } from '../../deploy/lab/scans.ts';
import { listeningPorts, tryConnect } from '../../deploy/lab/sockets.ts';
import {
  DESK_HOST,
  IT_HOST,
  OT_HOST,
  RELAY_HOST,
  RELAY_IT_LEG,
  relayLegFor,
  type LabHost,
} from '../../deploy/lab/zones.ts';
import { waitFor } from '../support/wait.ts';

const problem = labProblem();
if (problem !== undefined) {
  if (process.env['CI'] !== undefined) throw new Error(`the lab cannot run under CI: ${problem}`);
  console.log(`# skipping the lab: ${problem}`);
}

/** Points cross two agents and the relay within seconds; a loaded machine gets far longer. */
const DATA_BOUND_MS = 120_000;
/** A SYN that a firewall drops is never answered: after this long the connection has failed. */
const CONNECT_TIMEOUT_SECONDS = 3;
/**
 * `auto` enrollment opens within a second of `token create`, and closes as fast once no token is
 * left (relay/server/pki-upkeep.ts); a loaded machine gets far longer.
 */
const ENROLLMENT_OPEN_BOUND_MS = 30_000;
/** The IT host's one listener: the IT agent's local API (TLS, bearer token), for the IT network. */
const IT_HOST_OPEN: readonly number[] = [LAB_PORTS.api];
/** What the desk writes to the PLC's speed register, through the API, the relay and the OT agent. */
const WRITTEN_SPEED = 77;
/** A probe that was neither answered open nor closed reached a ruleset and was dropped there. */
const ALL_TCP_PORTS = 65_535;
/** How long the expiry case opens the enrollment port for the desk: long enough for one connect. */
const ENROLLMENT_EXPIRY_SECONDS = 5;
/** An element past its timeout is gone at the next lookup; this long after, the case fails. */
const ENROLLMENT_EXPIRY_BOUND_MS = 30_000;

function evidence(line: string): void {
  console.log(`lab: ${line}`);
}

/** What a scan saw, and where its probes were dropped: the target's input policy, or the scanner's output. */
interface ScanEvidence {
  readonly scan: PortScan;
  readonly droppedByTarget: number;
}

/** Packets a host's policy dropped on `chain`; undefined for the desk, which has no ruleset. */
async function dropsOf(host: LabHost, chain: 'input' | 'output'): Promise<number | undefined> {
  return host === DESK_HOST ? undefined : policyDrops(host, chain);
}

/** One scan at a time, so that each one's drop counts are its own. */
async function scan(from: LabHost, target: LabHost): Promise<ScanEvidence> {
  const [targetBefore, scannerBefore] = [await dropsOf(target, 'input'), await dropsOf(from, 'output')];
  const result = await scanAllPorts(from, target);
  const [targetAfter, scannerAfter] = [await dropsOf(target, 'input'), await dropsOf(from, 'output')];
  const droppedByTarget = (targetAfter ?? 0) - (targetBefore ?? 0);
  const byScanner =
    scannerAfter === undefined
      ? ' (the desk has no firewall)'
      : `; by the ${from.zone} host's own output policy: ${scannerAfter - (scannerBefore ?? 0)}`;
  evidence(
    `${result.report}\n     probes dropped by the ${target.zone} host's input policy: ${droppedByTarget}${byScanner}`,
  );
  return { scan: result, droppedByTarget };
}

/** A TCP connection attempt, with how many packets each end's policy dropped meanwhile. */
async function connect(from: LabHost, target: LabHost, port: number): Promise<string> {
  const [targetBefore, sourceBefore] = [await dropsOf(target, 'input'), await dropsOf(from, 'output')];
  const outcome = await tryConnect(from, target.address, port, CONNECT_TIMEOUT_SECONDS);
  const [targetAfter, sourceAfter] = [await dropsOf(target, 'input'), await dropsOf(from, 'output')];
  const dropped = (host: LabHost, before: number | undefined, after: number | undefined) =>
    after === undefined
      ? `the ${host.zone} host has no firewall`
      : `${host.zone} dropped ${after - (before ?? 0)}`;
  evidence(
    `${from.zone} -> ${target.zone} ${target.address}:${port}: ${outcome} (${dropped(from, sourceBefore, sourceAfter)} on output, ${dropped(target, targetBefore, targetAfter)} on input)`,
  );
  return outcome;
}

describe('lab - no inbound port on OT or IT, one listener in the DMZ', { skip: problem ?? false }, () => {
  let lab: Lab | undefined;
  let passed = true;
  const running = () => lab ?? assert.fail('the lab did not start');

  before(async () => {
    lab = await startLab();
    evidence(
      `up in ${lab.dir}: relay ${RELAY_HOST.address} (OT leg) and ${RELAY_IT_LEG.address} (IT leg), OT ${OT_HOST.address}, IT ${IT_HOST.address}, IT desk ${DESK_HOST.address}`,
    );
  });

  after(async () => {
    if (lab === undefined) return;
    const keepDir = !passed || process.env['LAB_KEEP'] !== undefined;
    await lab.stop({ keepDir });
    if (keepDir) evidence(`kept ${lab.dir} (configs, and process logs in logs/)`);
  });

  /** Whether the relay listens on its enrollment port now. */
  async function enrollmentListening(): Promise<boolean> {
    return (await listeningPorts(RELAY_HOST)).some((socket) => socket.port === LAB_PORTS.enrollment);
  }

  /**
   * Runs `body` with a token outstanding, the relay's enrollment port listening (mode auto); then
   * empties enrollment_sources, revokes the token and waits for the relay to close the port.
   */
  async function withTokenOutstanding(body: () => Promise<void>): Promise<void> {
    const { plant } = running();
    const jti = await plant.createToken('press-8', 'ot');
    try {
      await waitFor(enrollmentListening, 'the enrollment port to open', ENROLLMENT_OPEN_BOUND_MS, 200);
      await body();
    } finally {
      await closeEnrollment();
      await plant.revokeToken(jti);
      await waitFor(
        async () => !(await enrollmentListening()),
        'the enrollment port to close',
        ENROLLMENT_OPEN_BOUND_MS,
        200,
      );
    }
  }

  /** Each case records a failure, so that the lab's files are kept for diagnosis. */
  function check(name: string, body: () => Promise<void>): void {
    it(name, async () => {
      try {
        await body();
      } catch (error) {
        passed = false;
        throw error;
      }
    });
  }

  check(
    `data flows OT -> IT: the PLC's registers, read by ${OT_AGENT}, arrive in ${IT_AGENT}'s sink`,
    async () => {
      const { plant } = running();
      const arrived = (seen: Map<string, unknown>) =>
        seen.get(PLC_TOPICS.speed) === PLC_REGISTERS.speed.value &&
        seen.get(PLC_TOPICS.pressure) === PLC_REGISTERS.pressure.value;
      const values = await waitFor(
        async () => {
          const seen = await sinkValues(plant.sinkDir);
          return arrived(seen) ? seen : undefined;
        },
        'the PLC values in the IT sink',
        DATA_BOUND_MS,
        250,
      );
      evidence(
        `IT sink: ${PLC_TOPICS.speed} = ${String(values.get(PLC_TOPICS.speed))}, ${PLC_TOPICS.pressure} = ${String(values.get(PLC_TOPICS.pressure))}`,
      );
    },
  );

  check(
    'ss: the OT agent listens on nothing, the IT agent only on its API; on the OT host only the PLC',
    async () => {
      const { plant } = running();
      const ot = await listeningPorts(OT_HOST);
      const it = await listeningPorts(IT_HOST);
      for (const socket of [...ot, ...it]) evidence(`listening: ${socket.line}`);
      const pidOf = (agent: typeof plant.ot) => agent.incarnations.at(-1)?.pid ?? -1;
      const portsOf = (pid: number) =>
        [...ot, ...it].filter((socket) => socket.pids.includes(pid)).map((socket) => socket.port);
      assert.deepEqual(portsOf(pidOf(plant.ot)), [], 'the OT agent listens');
      assert.deepEqual(portsOf(pidOf(plant.it)), IT_HOST_OPEN, 'the IT agent listens on more than its API');
      // The PLC listens on the OT host's network address: only the firewall keeps the others out.
      assert.deepEqual(
        ot.map((socket) => `${socket.address}:${socket.port}`),
        [`${OT_HOST.address}:${LAB_PORTS.modbus}`],
      );
      assert.deepEqual(
        it.map((socket) => socket.port),
        IT_HOST_OPEN,
      );
    },
  );

  check("the IT agent's API serves the PLC's values to the IT desk", async () => {
    const { plant } = running();
    const started = Date.now();
    // The API's recent store is a consumer of its own, beside the sink: it may still be catching up.
    const answer = await waitFor(
      async () => {
        const answer = await callItApi(DESK_HOST, plant.api, {
          method: 'GET',
          path: `/api/v1/points?filter=${encodeURIComponent(`${OT_AGENT}/#`)}`,
        });
        assert.equal(answer.status, 200);
        const points = (answer.body as { points: { topic: string; value: unknown }[] }).points;
        const speed = points.find((point) => point.topic === PLC_TOPICS.speed)?.value;
        return speed === PLC_REGISTERS.speed.value ? answer : undefined;
      },
      "the PLC's speed in the API",
      DATA_BOUND_MS,
      250,
    );
    evidence(
      `desk -> GET /api/v1/points on the IT host, after ${Date.now() - started} ms: ${answer.status} ${JSON.stringify(answer.body)}`,
    );
  });

  check('nmap from it, from dmz and from the IT desk: zero open TCP ports on the OT agent host', async () => {
    for (const from of [IT_HOST, RELAY_HOST, DESK_HOST]) {
      const { scan: result, droppedByTarget } = await scan(from, OT_HOST);
      assert.deepEqual(result.open, [], `open on OT from ${from.zone}`);
      assert.deepEqual(result.closed, [], `answered (closed) on OT from ${from.zone}`);
      // From the desk nothing but the OT host's own ruleset is in the way: it dropped every probe.
      if (from === DESK_HOST)
        assert.ok(droppedByTarget >= ALL_TCP_PORTS, `the OT host dropped ${droppedByTarget}`);
    }
  });

  check('nmap: the IT agent host shows only its API port to the IT network, nothing to the DMZ', async () => {
    const fromDesk = await scan(DESK_HOST, IT_HOST);
    assert.deepEqual(fromDesk.scan.open, IT_HOST_OPEN);
    assert.deepEqual(fromDesk.scan.closed, []);
    assert.ok(
      fromDesk.droppedByTarget >= ALL_TCP_PORTS - 1,
      `the IT host dropped ${fromDesk.droppedByTarget}`,
    );
    const fromDmz = await scan(RELAY_HOST, IT_HOST);
    assert.deepEqual([...fromDmz.scan.open, ...fromDmz.scan.closed], []);
  });

  check(
    'nmap from ot, it and the IT desk: the relay host shows only the agent port, enrollment closed',
    async () => {
      for (const from of [OT_HOST, IT_HOST, DESK_HOST]) {
        const { scan: result, droppedByTarget } = await scan(from, relayLegFor(from));
        assert.deepEqual(result.open, [LAB_PORTS.agent], `open on the relay from ${from.zone}`);
        // The relay shuts the enrollment port with no token outstanding (mode auto), and the
        // firewall drops it: enrollment_sources is empty once the agents have enrolled.
        assert.deepEqual(result.closed, [], `closed on the relay from ${from.zone}`);
        if (from === DESK_HOST) {
          assert.ok(droppedByTarget >= ALL_TCP_PORTS - 1, `the relay host dropped ${droppedByTarget}`);
        }
      }
    },
  );

  check(
    'nmap from the IT desk: with a token outstanding and the desk let in, the relay shows the agent and enrollment ports',
    async () => {
      await withTokenOutstanding(async () => {
        for (const socket of await listeningPorts(RELAY_HOST))
          evidence(`listening on the relay host: ${socket.line}`);
        await openEnrollment(DESK_HOST, '1h');
        const { scan: result } = await scan(DESK_HOST, RELAY_IT_LEG);
        assert.deepEqual(result.open, [LAB_PORTS.agent, LAB_PORTS.enrollment]);
      });
    },
  );

  check(
    'enrollment at the firewall: open to one host for its timeout, to no other, and closed by a reload',
    async () => {
      const { dir } = running();
      await withTokenOutstanding(async () => {
        // The relay listens; the firewall has let no one in since the agents enrolled.
        assert.equal(await connect(DESK_HOST, RELAY_IT_LEG, LAB_PORTS.enrollment), 'timed out');
        await openEnrollment(DESK_HOST, `${ENROLLMENT_EXPIRY_SECONDS}s`);
        const opened = Date.now();
        assert.equal(await connect(DESK_HOST, RELAY_IT_LEG, LAB_PORTS.enrollment), 'connected');
        assert.equal(await connect(IT_HOST, RELAY_IT_LEG, LAB_PORTS.enrollment), 'timed out');
        await waitFor(
          async () => !(await enrollmentSources()).includes(DESK_HOST.address),
          "the desk's element to expire",
          ENROLLMENT_EXPIRY_BOUND_MS,
          200,
        );
        evidence(`the desk's enrollment_sources element expired after ${Date.now() - opened} ms`);
        assert.equal(await connect(DESK_HOST, RELAY_IT_LEG, LAB_PORTS.enrollment), 'timed out');
        // A reload, as at boot, leaves the set empty: what was open is closed again.
        await openEnrollment(DESK_HOST, '1h');
        await reloadFirewall(RELAY_HOST, dir);
        assert.deepEqual(await enrollmentSources(), []);
        assert.equal(await connect(DESK_HOST, RELAY_IT_LEG, LAB_PORTS.enrollment), 'timed out');
      });
    },
  );

  check(
    "the relay takes each network only on its own leg: the desk's SYNs with the OT host's address are dropped",
    async () => {
      // The OT host may enroll (its address in the set) and reaches both ports on the OT leg.
      await openEnrollment(OT_HOST, '1h');
      try {
        assert.equal(await connect(OT_HOST, RELAY_HOST, LAB_PORTS.agent), 'connected');
        // Refused: the firewall let it in; the relay, with no token outstanding, does not listen.
        assert.equal(await connect(OT_HOST, RELAY_HOST, LAB_PORTS.enrollment), 'refused');
        for (const port of [LAB_PORTS.agent, LAB_PORTS.enrollment]) {
          const before = await policyDrops(RELAY_HOST, 'input');
          await sendSpoofedSyns(DESK_HOST, OT_HOST, RELAY_IT_LEG, port);
          const dropped = (await policyDrops(RELAY_HOST, 'input')) - before;
          evidence(
            `desk -> ${RELAY_IT_LEG.address}:${port} (IT leg) as ${OT_HOST.address} (nmap -S): the relay host's input policy dropped ${dropped}`,
          );
          assert.ok(dropped >= 1, `the relay host took the spoofed SYN to ${port} (dropped ${dropped})`);
        }
        // And an IT host's own address on the OT leg: the IT network is taken on the IT leg only.
        assert.equal(await connect(DESK_HOST, RELAY_HOST, LAB_PORTS.agent), 'timed out');
      } finally {
        await closeEnrollment();
      }
    },
  );

  check('a direct TCP connection to the PLC in ot fails, from the IT host and from the IT desk', async () => {
    assert.equal(await connect(IT_HOST, OT_HOST, LAB_PORTS.modbus), 'timed out');
    const before = await policyDrops(OT_HOST, 'input');
    assert.equal(await connect(DESK_HOST, OT_HOST, LAB_PORTS.modbus), 'timed out');
    assert.ok(
      (await policyDrops(OT_HOST, 'input')) > before,
      "the OT host's own ruleset dropped the desk's SYN",
    );
    // The control: the same probe connects where the rulesets allow it.
    assert.equal(await connect(IT_HOST, RELAY_IT_LEG, LAB_PORTS.agent), 'connected');
    assert.equal(await connect(DESK_HOST, IT_HOST, LAB_PORTS.api), 'connected');
  });

  check('the relay host cannot open a connection into ot or it: its own ruleset drops it', async () => {
    for (const [target, port] of [
      [OT_HOST, LAB_PORTS.modbus],
      [IT_HOST, LAB_PORTS.api],
    ] as const) {
      const before = await policyDrops(RELAY_HOST, 'output');
      assert.equal(await connect(RELAY_HOST, target, port), 'timed out');
      assert.ok(
        (await policyDrops(RELAY_HOST, 'output')) > before,
        `the relay host's ruleset dropped the SYN to ${target.zone}`,
      );
    }
  });

  check(
    'the OT host connects out to the relay only: its own ruleset drops a connection into IT',
    async () => {
      const before = await policyDrops(OT_HOST, 'output');
      assert.equal(await connect(OT_HOST, IT_HOST, LAB_PORTS.api), 'timed out');
      assert.ok(
        (await policyDrops(OT_HOST, 'output')) > before,
        "the OT host's ruleset dropped the SYN to it",
      );
      assert.equal(await connect(OT_HOST, RELAY_HOST, LAB_PORTS.agent), 'connected');
    },
  );

  check(
    'a write flows IT -> OT: the desk sets the PLC register through the API, the relay and the OT agent',
    async () => {
      const { plant } = running();
      const answer = await callItApi(DESK_HOST, plant.api, {
        method: 'POST',
        path: '/api/v1/writes',
        body: { topic: PLC_TOPICS.speed, value: WRITTEN_SPEED },
      });
      evidence(
        `desk -> POST /api/v1/writes ${PLC_TOPICS.speed} = ${WRITTEN_SPEED}: ${answer.status} ${JSON.stringify(answer.body)}`,
      );
      assert.equal(answer.status, 200);
      assert.equal((answer.body as { status?: unknown }).status, 'done');
      // The OT agent reads the register back: the new value comes round to the IT sink.
      await waitFor(
        async () => (await sinkValues(plant.sinkDir)).get(PLC_TOPICS.speed) === WRITTEN_SPEED,
        `${PLC_TOPICS.speed} = ${WRITTEN_SPEED} read back from the PLC into the IT sink`,
        DATA_BOUND_MS,
        250,
      );
      evidence(`IT sink: ${PLC_TOPICS.speed} = ${WRITTEN_SPEED}, read back from the PLC after the write`);
    },
  );
});
