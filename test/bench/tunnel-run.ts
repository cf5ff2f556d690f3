/**
 * `npm run bench:tunnel` (issue 9): TCP through a tunnel, IT agent -> relay -> OT agent (each a
 * process of its own: `dmz-agent run` and `dmz-relay --config`), against the same workloads
 * over a stunnel mTLS client/server pair (Debian stunnel4, two processes, TLS 1.3) and direct, in
 * the same run, in alternating rounds:
 *
 * - bulk: one stream carries BULK_BYTES to a target that counts them and answers at the end;
 * - round trip: a 12-byte request and its 12-byte echo (a Modbus read's size), one at a time;
 * - parallel: PARALLEL streams carry BULK_BYTES / PARALLEL each at once (aggregate);
 * - stunnel chain: the same workloads through three stunnel processes and two TLS links, the
 *   tunnel's own topology (the pair is the issue's comparison; the chain is the same work);
 * - Node floor: the same topology as three Node processes that only pipe TLS (tls-hop.ts), the
 *   least any Node implementation of it can cost here; a diagnosis, not a peer;
 * - Node splice: three Node processes again, but one TLS link, from the first to the last, and the
 *   middle one a plain TCP pipe: what a design with end-to-end TLS between the agents and a relay
 *   that only splices ciphertext would reach in Node (BENCHMARKS.md); a diagnosis, not a peer;
 * - stalled neighbour (tunnel only): STALL_STREAMS downloads alone, then again with one more
 *   stream whose reader never reads; the others' throughput with it over without it.
 *
 * Each path first carries WARM_UP_BYTES and WARM_UP_ROUND_TRIPS unmeasured. Targets: bulk at
 * least 0.8x stunnel's; added round trip (minus direct) at most 2x stunnel's; the
 * stalled-neighbour ratio at least 0.8; each with its verdict, against the pair (the issue's) and
 * against the chain (the same work). The machine's load average is printed with the results.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { AGENT_BIN, createAgentPlant, readAgentStatus, type AgentPlant } from '../support/agent-plant.ts';
import { stringify } from 'yaml';
import { CA_STATE_TRUST_DOMAIN } from '../support/ca-state.ts';
import { KillableProcess } from '../support/killable-process.ts';
import { freePort } from '../support/ports.ts';
import { createTestPki } from '../support/test-pki.ts';
import { waitFor } from '../support/wait.ts';
import { monotonicMs } from './clock.ts';
import { readCpuSeconds } from './processes.ts';
import { summarizeLatency } from './stats.ts';
import { formatRatio, formatTable } from './table.ts';

const BULK_BYTES = 256 * 1024 * 1024;
const PARALLEL = 10;
const RTT_SAMPLES = 2_000;
const WARM_UP_BYTES = 64 * 1024 * 1024;
const WARM_UP_ROUND_TRIPS = 500;
const ROUNDS = Number(process.env['TUNNEL_BENCH_ROUNDS'] ?? 3);
const STALL_STREAMS = 4;
const STALL_BYTES = 64 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x5a);
const REQUEST = Buffer.alloc(12, 0x01);
const TLS_HOP = join(import.meta.dirname, 'tls-hop.ts');
const RELAY_BIN = join(import.meta.dirname, '..', '..', 'bin', 'dmz-relay.js');

interface Path {
  readonly name: string;
  /** The processes that carry this path (none for direct: the kernel's loopback). */
  readonly pids: readonly number[];
  readonly bulkPort: number;
  readonly echoPort: number;
  readonly downloadPort: number;
}

/** Counts what arrives; at the client's end, answers `ok` and ends. */
function sinkServer(): Server {
  return createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('data', () => undefined);
    socket.on('end', () => socket.end('ok'));
    socket.on('error', () => undefined);
  });
}

function echoServer(): Server {
  return createServer((socket) => {
    socket.setNoDelay(true);
    socket.pipe(socket);
    socket.on('error', () => undefined);
  });
}

/** Sends STALL_BYTES to every client, then ends. */
function downloadServer(): Server {
  const payload = Buffer.alloc(STALL_BYTES, 0x33);
  return createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.end(payload);
  });
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(socket));
    socket.setNoDelay(true);
    socket.once('error', reject);
  });
}

/** Sends `bytes` and waits for the sink's answer; returns the seconds taken. */
async function upload(port: number, bytes: number): Promise<number> {
  const socket = await open(port);
  const started = monotonicMs();
  const answered = new Promise<void>((resolve, reject) => {
    socket.on('data', () => undefined);
    socket.once('end', resolve);
    socket.once('error', reject);
  });
  for (let sent = 0; sent < bytes; sent += CHUNK.byteLength) {
    if (!socket.write(CHUNK)) await once(socket, 'drain');
  }
  socket.end();
  await answered;
  socket.destroy();
  return (monotonicMs() - started) / 1000;
}

async function roundTrips(port: number, count = RTT_SAMPLES): Promise<number[]> {
  const socket = await open(port);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = monotonicMs();
    const echoed = new Promise<void>((resolve) => {
      let got = 0;
      const onData = (chunk: Buffer) => {
        got += chunk.byteLength;
        if (got >= REQUEST.byteLength) {
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
    });
    socket.write(REQUEST);
    await echoed;
    samples.push(monotonicMs() - started);
  }
  socket.destroy();
  return samples;
}

/** MB/s of each of `streams` downloads, with `stalled` more streams open that never read. */
async function downloads(port: number, streams: number, stalled: number): Promise<number> {
  const idle = await Promise.all(Array.from({ length: stalled }, () => open(port)));
  for (const socket of idle) socket.pause();
  const started = monotonicMs();
  const rates = await Promise.all(
    Array.from({ length: streams }, async () => {
      const socket = await open(port);
      let got = 0;
      socket.on('data', (chunk: Buffer) => (got += chunk.byteLength));
      await once(socket, 'end');
      socket.destroy();
      return got / 1e6 / ((monotonicMs() - started) / 1000);
    }),
  );
  for (const socket of idle) socket.destroy();
  return rates.reduce((sum, rate) => sum + rate, 0) / rates.length;
}

/**
 * stunnel between the benchmark's clients and `targets`: `pair` is a client and a server process
 * (one TLS link, the issue's comparison); `chain` puts a third process in the middle that takes
 * TLS and gives TLS (two TLS links, three processes: the tunnel's own topology, the same work). A
 * stunnel service is either TLS-in or TLS-out, so the middle runs a server service and a client
 * service joined over loopback: one plaintext TCP hop more than the relay has, which costs stunnel
 * and not the tunnel.
 */
async function startStunnel(
  dir: string,
  targets: readonly number[],
  shape: 'pair' | 'chain',
): Promise<{ ports: number[]; pids: number[]; stop(): void }> {
  const binary = ['stunnel4', 'stunnel'].find((name) => spawnSync('which', [name]).status === 0);
  if (binary === undefined) throw new Error('stunnel4 is not installed (apt-get install stunnel4)');
  const pki = await createTestPki();
  const client = await pki.issueAgent('it', 'stunnel-client');
  await mkdir(dir, { recursive: true });
  const file = (name: string, text: string) => writeFile(join(dir, name), text, { mode: 0o600 });
  await file('ca.pem', pki.ca.certPem);
  await file('server.pem', pki.relay.certPem + pki.relay.keyPem);
  await file('client.pem', client.certPem + client.keyPem);
  const common = [
    'foreground = yes',
    'pid =',
    `CAfile = ${join(dir, 'ca.pem')}`,
    'verifyChain = yes',
    'sslVersionMin = TLSv1.3',
    'socket = l:TCP_NODELAY=1',
    'socket = r:TCP_NODELAY=1',
  ];
  const tlsIn = (name: string, accept: number, connect: number) => [
    `[${name}]`,
    `cert = ${join(dir, 'server.pem')}`,
    'requireCert = yes',
    `accept = 127.0.0.1:${accept}`,
    `connect = 127.0.0.1:${connect}`,
  ];
  const tlsOut = (name: string, accept: number, connect: number) => [
    `[${name}]`,
    'client = yes',
    `cert = ${join(dir, 'client.pem')}`,
    'checkHost = localhost',
    `accept = 127.0.0.1:${accept}`,
    `connect = 127.0.0.1:${connect}`,
  ];
  // Each process's services, from the clients' end to the targets' end.
  const processes: string[][] = shape === 'pair' ? [[], []] : [[], [], []];
  const ports: number[] = [];
  for (const [index, target] of targets.entries()) {
    const entry = await freePort();
    const first = await freePort();
    processes[0]!.push(...tlsOut(`c${index}`, entry, first));
    if (shape === 'pair') {
      processes[1]!.push(...tlsIn(`s${index}`, first, target));
    } else {
      const inside = await freePort();
      const second = await freePort();
      processes[1]!.push(...tlsIn(`m${index}`, first, inside), ...tlsOut(`n${index}`, inside, second));
      processes[2]!.push(...tlsIn(`s${index}`, second, target));
    }
    ports.push(entry);
  }
  const children: ChildProcess[] = [];
  for (const [index, services] of processes.entries()) {
    const name = `${shape}-${index}.conf`;
    await file(name, [...common, ...services].join('\n'));
    children.push(spawn(binary, [join(dir, name)], { stdio: ['ignore', 'ignore', 'ignore'] }));
  }
  await waitFor(
    async () => (await Promise.all(ports.map(connectable))).every(Boolean),
    'stunnel listening',
    10_000,
    50,
  );
  return {
    ports,
    pids: children.map((child) => child.pid ?? 0),
    stop: () => children.forEach((child) => child.kill()),
  };
}

/**
 * The Node floor: three processes of tls-hop.ts (TCP in, TLS out; TLS both sides; TLS in, TCP
 * out) between the clients and `targets`, using `dir`'s stunnel certificates. Not a product: the
 * least the tunnel's topology costs in Node, framing and flow control left out. Other `hops` give
 * other topologies of three processes (the splice: TLS from the first to the last).
 */
async function startNodeFloor(
  dir: string,
  targets: readonly number[],
  hops: [string, string][] = [
    ['tcp', 'tls'],
    ['tls', 'tls'],
    ['tls', 'tcp'],
  ],
): Promise<{ ports: number[]; pids: number[]; stop(): void }> {
  const routes: string[][] = hops.map(() => []);
  const ports: number[] = [];
  for (const target of targets) {
    const chain = [await freePort(), await freePort(), await freePort(), target];
    hops.forEach((_, index) => routes[index]!.push(`${chain[index]}:${chain[index + 1]}`));
    ports.push(chain[0]!);
  }
  const children = hops.map(([inSide, outSide], index) =>
    spawn(process.execPath, ['--import', 'tsx', TLS_HOP, inSide, outSide, dir, ...routes[index]!], {
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  );
  await waitFor(
    async () => (await Promise.all(ports.map(connectable))).every(Boolean),
    'the Node floor listening',
    30_000,
    50,
  );
  return {
    ports,
    pids: children.map((child) => child.pid ?? 0),
    stop: () => children.forEach((child) => child.kill()),
  };
}

function connectable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function startTunnel(targets: { bulk: number; echo: number; download: number }): Promise<{
  plant: AgentPlant;
  ports: { bulk: number; echo: number; download: number };
  agents: KillableProcess[];
}> {
  const policy = [{ role: 'ot' }, { role: 'it', tunnel: ['plc-gw/+'] }];
  const plant = await createAgentPlant({ policy });
  // The relay as `dmz-relay run`, a process of its own like each stunnel, on the plant's state and
  // port; its per-agent byte budget (64 MiB/s by default) raised, or that would be what is measured.
  await plant.stopRelay();
  const relayFile = join(plant.dir, 'relay.yaml');
  await writeFile(
    relayFile,
    stringify({
      trustDomain: CA_STATE_TRUST_DOMAIN,
      state: join(plant.dir, 'relay-state'),
      listen: {
        agents: { host: '127.0.0.1', port: Number(new URL(plant.url).port) },
        admin: { host: '127.0.0.1', port: 0 },
        enrollment: { host: '127.0.0.1', port: 0, mode: 'off' },
      },
      log: { level: 'warn', audit: join(plant.dir, 'audit.jsonl') },
      limits: { bytesPerSecond: 4 * 1024 * 1024 * 1024, messagesPerSecond: 1_000_000 },
      policy,
    }),
  );
  // TUNNEL_BENCH_PROFILE=DIR: the relay and both agents write a CPU profile there when they stop
  // (named by pid: the pids printed at the start are the relay's, the OT agent's, the IT agent's);
  // TUNNEL_BENCH_NODE_FLAGS: more flags for the three (e.g. --trace-gc, to their stdout logs).
  const profile = process.env['TUNNEL_BENCH_PROFILE'];
  const launcher: [string, ...string[]] = [
    process.execPath,
    ...(profile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profile}`]),
    ...(process.env['TUNNEL_BENCH_NODE_FLAGS']?.split(' ').filter(Boolean) ?? []),
  ];
  const relay = new KillableProcess('relay', [RELAY_BIN, '--config', relayFile], plant.dir, launcher);
  const agent = (name: string, file: string) =>
    new KillableProcess(name, [AGENT_BIN, 'run', '--config', file], plant.dir, launcher);
  const ports = { bulk: await freePort(), echo: await freePort(), download: await freePort() };
  const otFile = await plant.configFile('ot.yaml', {
    credentials: await plant.enroll('ot', 'plc-gw'),
    state: join(plant.dir, 'ot-state'),
    log: { level: 'warn' },
    ot: {
      sources: [{ type: 'simulator', name: 'line1', points: [{ name: 'temp', signal: 'sine' }] }],
      services: Object.entries(targets).map(([name, port]) => ({
        name,
        target: `127.0.0.1:${port}`,
        maxStreams: 64,
      })),
    },
  });
  const itFile = await plant.configFile('it.yaml', {
    credentials: await plant.enroll('it', 'scada'),
    state: join(plant.dir, 'it-state'),
    log: { level: 'warn' },
    it: { tunnels: Object.entries(ports).map(([name, port]) => ({ listen: port, to: `plc-gw/${name}` })) },
  });
  const agents = [relay, agent('ot', otFile), agent('it', itFile)];
  for (const agent of agents) agent.start();
  await waitFor(
    async () =>
      (await readAgentStatus(join(plant.dir, 'it-state')))?.relay.connected === true &&
      (await roundTrips1(ports.echo)),
    'the tunnel up',
    60_000,
    200,
  );
  return { plant, ports, agents };
}

async function roundTrips1(port: number): Promise<boolean> {
  try {
    const socket = await open(port);
    socket.write(REQUEST);
    const [chunk] = (await Promise.race([once(socket, 'data'), once(socket, 'close')])) as [
      Buffer | undefined,
    ];
    socket.destroy();
    return Buffer.isBuffer(chunk);
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const servers = { bulk: sinkServer(), echo: echoServer(), download: downloadServer() };
  const targets = {
    bulk: await listen(servers.bulk),
    echo: await listen(servers.echo),
    download: await listen(servers.download),
  };
  const tunnel = await startTunnel(targets);
  const targetPorts = [targets.bulk, targets.echo, targets.download];
  const stunnel = await startStunnel(join(tunnel.plant.dir, 'stunnel'), targetPorts, 'pair');
  const chain = await startStunnel(join(tunnel.plant.dir, 'stunnel-chain'), targetPorts, 'chain');
  const floor = await startNodeFloor(join(tunnel.plant.dir, 'stunnel'), targetPorts);
  const splice = await startNodeFloor(join(tunnel.plant.dir, 'stunnel'), targetPorts, [
    ['tcp', 'tls'],
    ['tcp', 'tcp'],
    ['tls', 'tcp'],
  ]);
  const tunnelPids = tunnel.agents.map((agent) => agent.incarnations.at(-1)?.pid ?? 0);
  console.log(`tunnel pids: relay ${tunnelPids[0]}, OT agent ${tunnelPids[1]}, IT agent ${tunnelPids[2]}`);
  const paths: Path[] = [
    {
      name: 'direct',
      pids: [],
      bulkPort: targets.bulk,
      echoPort: targets.echo,
      downloadPort: targets.download,
    },
    {
      name: 'stunnel',
      pids: stunnel.pids,
      bulkPort: stunnel.ports[0]!,
      echoPort: stunnel.ports[1]!,
      downloadPort: stunnel.ports[2]!,
    },
    {
      name: 'stunnel chain',
      pids: chain.pids,
      bulkPort: chain.ports[0]!,
      echoPort: chain.ports[1]!,
      downloadPort: chain.ports[2]!,
    },
    {
      name: 'Node floor',
      pids: floor.pids,
      bulkPort: floor.ports[0]!,
      echoPort: floor.ports[1]!,
      downloadPort: floor.ports[2]!,
    },
    {
      name: 'Node splice',
      pids: splice.pids,
      bulkPort: splice.ports[0]!,
      echoPort: splice.ports[1]!,
      downloadPort: splice.ports[2]!,
    },
    {
      name: 'tunnel',
      pids: tunnelPids,
      bulkPort: tunnel.ports.bulk,
      echoPort: tunnel.ports.echo,
      downloadPort: tunnel.ports.download,
    },
  ];
  const results = new Map(
    paths.map((path) => [
      path.name,
      { bulk: [] as number[], rtt: [] as number[], parallel: [] as number[], cpuPerMb: [] as number[] },
    ]),
  );
  const cpuOf = (path: Path) => path.pids.reduce((sum, pid) => sum + readCpuSeconds(pid), 0);
  /** The tunnel's CPU per bulk MB, split by process (relay, OT agent, IT agent). */
  const tunnelSplit = tunnelPids.map(() => [] as number[]);
  try {
    // Unmeasured: the agents' and the relay's JIT compiles the data path first (a cold first round
    // cost the tunnel half its throughput, and a single round's result was that of cold code).
    for (const path of paths) {
      await upload(path.bulkPort, WARM_UP_BYTES);
      await roundTrips(path.echoPort, WARM_UP_ROUND_TRIPS);
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const path of paths) {
        const result = results.get(path.name)!;
        const cpuBefore = cpuOf(path);
        const splitBefore = tunnelPids.map(readCpuSeconds);
        result.bulk.push(BULK_BYTES / 1e6 / (await upload(path.bulkPort, BULK_BYTES)));
        result.cpuPerMb.push(((cpuOf(path) - cpuBefore) * 1000) / (BULK_BYTES / 1e6));
        if (path.name === 'tunnel') {
          tunnelPids.forEach((pid, index) =>
            tunnelSplit[index]?.push(
              ((readCpuSeconds(pid) - (splitBefore[index] ?? 0)) * 1000) / (BULK_BYTES / 1e6),
            ),
          );
        }
        result.rtt.push(...(await roundTrips(path.echoPort)));
        const started = monotonicMs();
        await Promise.all(
          Array.from({ length: PARALLEL }, () => upload(path.bulkPort, BULK_BYTES / PARALLEL)),
        );
        result.parallel.push(BULK_BYTES / 1e6 / ((monotonicMs() - started) / 1000));
      }
    }
    const alone: number[] = [];
    const withStalled: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      alone.push(await downloads(tunnel.ports.download, STALL_STREAMS, 0));
      withStalled.push(await downloads(tunnel.ports.download, STALL_STREAMS, 1));
    }
    report(results, median(withStalled) / median(alone), alone, withStalled);
    const [relayCpu, otCpu, itCpu] = tunnelSplit.map((samples) => median(samples).toFixed(2));
    console.log(`tunnel CPU per bulk MB: relay ${relayCpu} ms, OT agent ${otCpu} ms, IT agent ${itCpu} ms`);
  } finally {
    stunnel.stop();
    chain.stop();
    floor.stop();
    splice.stop();
    await Promise.all(tunnel.agents.map((agent) => agent.stop()));
    await tunnel.plant.close();
    for (const server of Object.values(servers)) server.close();
  }
}

/** A ratio and its verdict against a target it must reach (`atLeast`) or stay under (`atMost`). */
function atLeast(ratio: number, target: number): [string, string] {
  return [formatRatio(ratio), `>= ${formatRatio(target)}: ${ratio >= target ? 'met' : 'not met'}`];
}

function atMost(ratio: number, target: number): [string, string] {
  return [formatRatio(ratio), `<= ${formatRatio(target)}: ${ratio <= target ? 'met' : 'not met'}`];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function report(
  results: Map<string, { bulk: number[]; rtt: number[]; parallel: number[]; cpuPerMb: number[] }>,
  stallRatio: number,
  alone: readonly number[],
  withStalled: readonly number[],
): void {
  const row = (name: string) => {
    const result = results.get(name)!;
    const rtt = summarizeLatency(result.rtt);
    return {
      bulk: median(result.bulk),
      parallel: median(result.parallel),
      p50: rtt.p50Ms,
      p99: rtt.p99Ms,
      cpuPerMb: median(result.cpuPerMb),
    };
  };
  const direct = row('direct');
  const stunnel = row('stunnel');
  const chain = row('stunnel chain');
  const floor = row('Node floor');
  const tunnel = row('tunnel');
  const spliced = row('Node splice');
  const mb = (value: number) => `${value.toFixed(0)} MB/s`;
  const ms = (value: number) => `${value.toFixed(3)} ms`;
  console.log(
    `\nTunnel benchmark: ${ROUNDS} rounds, load average ${loadavg()
      .map((value) => value.toFixed(2))
      .join(' ')}`,
  );
  for (const line of formatTable([
    ['path', 'bulk, 1 stream', 'CPU per MB', `${PARALLEL} streams`, 'round trip p50', 'p99'],
    ...[
      ['direct', direct],
      ['stunnel', stunnel],
      ['stunnel chain', chain],
      ['Node floor', floor],
      ['Node splice', spliced],
      ['tunnel', tunnel],
    ].map(([name, r]) => {
      const value = r as typeof direct;
      return [
        name as string,
        mb(value.bulk),
        ms(value.cpuPerMb),
        mb(value.parallel),
        ms(value.p50),
        ms(value.p99),
      ];
    }),
  ]))
    console.log(line);
  const addedTunnel = tunnel.p50 - direct.p50;
  const addedStunnel = stunnel.p50 - direct.p50;
  const addedChain = chain.p50 - direct.p50;
  const addedFloor = floor.p50 - direct.p50;
  const addedSplice = spliced.p50 - direct.p50;
  console.log('');
  for (const line of formatTable([
    ['ratio', 'value', 'target'],
    // The issue's targets, against stunnel's pair: one TLS link against the tunnel's two.
    ['bulk: tunnel / stunnel', ...atLeast(tunnel.bulk / stunnel.bulk, 0.8)],
    ['CPU per bulk MB: tunnel / stunnel', formatRatio(tunnel.cpuPerMb / stunnel.cpuPerMb), ''],
    [`${PARALLEL} streams: tunnel / stunnel`, formatRatio(tunnel.parallel / stunnel.parallel), ''],
    ['added round trip: tunnel / stunnel', ...atMost(addedTunnel / addedStunnel, 2)],
    [`stalled neighbour: ${STALL_STREAMS} streams with / without`, ...atLeast(stallRatio, 0.8)],
    // The same targets on the same work as the tunnel's: three processes, two TLS links.
    ['bulk: tunnel / stunnel chain', ...atLeast(tunnel.bulk / chain.bulk, 0.8)],
    ['CPU per bulk MB: tunnel / stunnel chain', formatRatio(tunnel.cpuPerMb / chain.cpuPerMb), ''],
    [`${PARALLEL} streams: tunnel / stunnel chain`, formatRatio(tunnel.parallel / chain.parallel), ''],
    ['added round trip: tunnel / stunnel chain', ...atMost(addedTunnel / addedChain, 2)],
    // Not a comparison with a peer: how close each gets to what Node itself allows.
    ['bulk: Node floor / stunnel', formatRatio(floor.bulk / stunnel.bulk), ''],
    ['bulk: tunnel / Node floor', formatRatio(tunnel.bulk / floor.bulk), ''],
    ['added round trip: Node floor / stunnel', formatRatio(addedFloor / addedStunnel), ''],
    ['added round trip: tunnel / Node floor', formatRatio(addedTunnel / addedFloor), ''],
    // One TLS link, as in stunnel's pair: what a relay that splices end-to-end TLS would reach.
    ['bulk: Node splice / stunnel', formatRatio(spliced.bulk / stunnel.bulk), ''],
    ['added round trip: Node splice / stunnel', formatRatio(addedSplice / addedStunnel), ''],
  ]))
    console.log(line);
  console.log(
    `\nstalled neighbour, per-stream MB/s alone: ${alone.map((value) => value.toFixed(0)).join(' ')}; with a stalled reader: ${withStalled.map((value) => value.toFixed(0)).join(' ')}`,
  );
}

await main();
