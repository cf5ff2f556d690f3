/**
 * deploy/container: no container engine runs on these machines, so the Dockerfile and the lab's
 * compose file are linted instead: the image runs as a non-root numeric user with no shell
 * needed, holds only the built package and its production dependencies; every compose service
 * runs read-only, without capabilities or a way to gain privileges, on the zone networks only;
 * the lab's configurations are valid for the relay and the agents. Each rule also meets a bad
 * example, so that a rule that cannot fail shows.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { checkConfigRole, loadAgentConfig } from '../../agents/runtime/config.ts';
import { loadRelayConfig } from '../../relay/server/config.ts';
import { parseDockerfile, type Dockerfile } from '../support/dockerfile.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CONTAINER_DIR = join(ROOT, 'deploy', 'container');
const PACKAGE = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
};
const BIN_FILES = new Set(Object.values(PACKAGE.bin));

/** What the runtime image may hold, by destination: the package's files and the state mount points. */
const RUNTIME_COPIES = new Set([
  './',
  './bin/',
  './dist/',
  './node_modules/',
  '/var/lib/dmz-relay/',
  '/var/lib/dmz-agent/',
]);
/** A non-root numeric user: a name could resolve to root in some image, a number cannot change. */
const NON_ROOT_USER = /^(?!0(:|$))\d+(:\d+)?$/;

function dockerfileFindings(dockerfile: Dockerfile): string[] {
  const findings: string[] = [];
  const final = dockerfile.stages.at(-1);
  if (final === undefined) return ['no FROM'];
  if (!/distroless|-slim\b/.test(final.image)) findings.push(`final image ${final.image} is not minimal`);
  const user = final.instructions.filter((step) => step.keyword === 'USER').at(-1)?.args;
  if (user === undefined || !NON_ROOT_USER.test(user))
    findings.push(`final USER ${user ?? '(none)'} is not a non-root id`);
  for (const stage of dockerfile.stages) {
    for (const step of stage.instructions) {
      if (step.keyword === 'ADD' && /(^|\s)(https?|ftp|git):|(^|\s)git@/.test(step.args)) {
        findings.push(`line ${step.line}: ADD of a URL`);
      }
    }
  }
  for (const step of final.instructions) {
    if (step.keyword === 'RUN') findings.push(`line ${step.line}: RUN in the final stage (it has no shell)`);
    if ((step.keyword === 'CMD' || step.keyword === 'ENTRYPOINT') && step.exec === undefined) {
      findings.push(`line ${step.line}: ${step.keyword} in shell form needs /bin/sh`);
    }
    if (step.keyword === 'HEALTHCHECK' && !/^(NONE|CMD \[)/.test(step.args)) {
      findings.push(`line ${step.line}: HEALTHCHECK in shell form needs /bin/sh`);
    }
    if (step.keyword === 'COPY' && !RUNTIME_COPIES.has(step.args.split(' ').at(-1) ?? '')) {
      findings.push(`line ${step.line}: COPY of ${step.args} into the runtime image`);
    }
  }
  const healthcheck = final.instructions.some((step) => step.keyword === 'HEALTHCHECK');
  if (!healthcheck && !dockerfile.comments.some((comment) => /HEALTHCHECK/.test(comment))) {
    findings.push('no HEALTHCHECK, and no comment says why');
  }
  // node_modules must come from a stage that installed production dependencies only.
  const modules = final.instructions.find(
    (step) => step.keyword === 'COPY' && step.args.endsWith('./node_modules/'),
  );
  const source = dockerfile.stages.find((stage) => stage.name === modules?.flags.get('from'));
  if (!source?.instructions.some((step) => step.keyword === 'RUN' && /npm ci .*--omit=dev/.test(step.args))) {
    findings.push('node_modules does not come from an `npm ci --omit=dev` stage');
  }
  const command = final.instructions.filter((step) => step.keyword === 'CMD').at(-1)?.exec?.[0];
  if (command === undefined || !BIN_FILES.has(command))
    findings.push(`CMD runs ${command}, not a package bin`);
  return findings;
}

interface ComposeService {
  readonly [key: string]: unknown;
}

function composeFindings(compose: { services?: Record<string, ComposeService> }): string[] {
  const findings: string[] = [];
  for (const [name, service] of Object.entries(compose.services ?? {})) {
    const problem = (text: string) => findings.push(`${name}: ${text}`);
    if (service.read_only !== true) problem('read_only is not true');
    if (!(service.cap_drop as unknown[] | undefined)?.includes('ALL')) problem('cap_drop lacks ALL');
    const securityOpt = (service.security_opt as string[] | undefined) ?? [];
    if (!securityOpt.some((option) => /^no-new-privileges(:true)?$/.test(option)))
      problem('no no-new-privileges');
    if (typeof service.user !== 'string' || !NON_ROOT_USER.test(service.user)) {
      problem(`user ${String(service.user)} is not a non-root id`);
    }
    if (service.privileged === true) problem('privileged');
    if (service.network_mode !== undefined) problem(`network_mode ${JSON.stringify(service.network_mode)}`);
    for (const key of ['cap_add', 'devices', 'ports', 'pid', 'ipc'] as const) {
      if (service[key] !== undefined) problem(`${key} is set`);
    }
    const command = service.command;
    if (!Array.isArray(command) || !BIN_FILES.has(String(command[0]))) {
      problem('command is not the exec form of a package bin');
    }
    const test = (service.healthcheck as { test?: unknown } | undefined)?.test;
    if (!Array.isArray(test) || test[0] !== 'CMD') problem('healthcheck is not in exec form (CMD)');
    for (const volume of (service.volumes as string[] | undefined) ?? []) {
      if (volume.includes('docker.sock')) problem('mounts the Docker socket');
      if (volume.startsWith('.') && !volume.endsWith(':ro')) problem(`bind mount ${volume} is writable`);
    }
  }
  return findings;
}

async function readCompose(): Promise<{
  services: Record<string, ComposeService>;
  networks: Record<string, { internal?: boolean }>;
}> {
  // Compose files use YAML merge keys (`<<: *hardening`).
  return parse(await readFile(join(CONTAINER_DIR, 'compose.yaml'), 'utf8'), { merge: true }) as never;
}

describe('deploy - container image', () => {
  it('the Dockerfile runs as a non-root id, needs no shell, holds only dist/, bin/ and production modules', async () => {
    const dockerfile = parseDockerfile(await readFile(join(CONTAINER_DIR, 'Dockerfile'), 'utf8'));
    assert.deepEqual(dockerfileFindings(dockerfile), []);
    assert.equal(dockerfile.stages.length, 3, 'build, production dependencies, runtime');
    const build = dockerfile.stages[0]!.instructions.map((step) => step.args);
    assert.ok(
      build.includes('npm ci --no-audit --no-fund') && build.includes('npm run build'),
      build.join('\n'),
    );
  });

  it('the build context lets in only what the build needs', async () => {
    const ignore = (await readFile(join(CONTAINER_DIR, 'Dockerfile.dockerignore'), 'utf8'))
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'));
    assert.equal(ignore[0], '*', 'everything out first');
    assert.ok(!ignore.includes('!node_modules/') && !ignore.includes('!dist/'), 'no local build or modules');
  });

  const badDockerfiles = [
    {
      case: 'root user',
      text: 'FROM node:20-slim\nUSER root\nCMD ["bin/dmz-relay.js"]',
      finding: /USER root/,
    },
    { case: 'no user', text: 'FROM node:20-slim\nCMD ["bin/dmz-relay.js"]', finding: /USER \(none\)/ },
    { case: 'uid 0', text: 'FROM node:20-slim\nUSER 0:0\nCMD ["bin/dmz-relay.js"]', finding: /USER 0:0/ },
    { case: 'full image', text: 'FROM node:20\nUSER 1000\nCMD ["bin/dmz-relay.js"]', finding: /not minimal/ },
    {
      case: 'URL',
      text: 'FROM node:20-slim\nADD https://x.example/a.tgz /a\nUSER 1',
      finding: /ADD of a URL/,
    },
    {
      case: 'shell CMD',
      text: 'FROM node:20-slim\nUSER 1\nCMD node bin/dmz-relay.js',
      finding: /shell form/,
    },
    { case: 'RUN', text: 'FROM node:20-slim\nUSER 1\nRUN \\\n  ls\nCMD ["x"]', finding: /line 3: RUN/ },
    { case: 'context', text: 'FROM node:20-slim\nCOPY . .\nUSER 1', finding: /COPY of \. \./ },
    { case: 'no reason', text: 'FROM node:20-slim\nUSER 1', finding: /no HEALTHCHECK/ },
    { case: 'dev modules', text: 'FROM node:20-slim\nUSER 1', finding: /--omit=dev/ },
  ];
  for (const bad of badDockerfiles) {
    it(`a Dockerfile with ${bad.case} is refused`, () => {
      const findings = dockerfileFindings(parseDockerfile(bad.text));
      assert.ok(
        findings.some((finding) => bad.finding.test(finding)),
        findings.join('\n'),
      );
    });
  }
});

describe('deploy - container lab (compose.yaml)', () => {
  it('every service is read-only, drops every capability, cannot gain privileges, runs as non-root', async () => {
    const compose = await readCompose();
    assert.deepEqual(Object.keys(compose.services).sort(), ['it-agent', 'ot-agent', 'relay']);
    assert.deepEqual(composeFindings(compose), []);
  });

  it('zones: the relay joins ot and it, each agent its own zone only, no network reaches outside', async () => {
    const compose = await readCompose();
    const networksOf = (name: string) => compose.services[name]!.networks as string[];
    assert.deepEqual(networksOf('relay'), ['ot', 'it']);
    assert.deepEqual(networksOf('ot-agent'), ['ot']);
    assert.deepEqual(networksOf('it-agent'), ['it']);
    for (const [name, network] of Object.entries(compose.networks))
      assert.equal(network.internal, true, name);
  });

  it('the lab configurations are valid, and the agents dial the relay where it listens', async () => {
    const relay = await loadRelayConfig(join(CONTAINER_DIR, 'lab', 'relay.yaml'));
    assert.equal(relay.state, '/var/lib/dmz-relay');
    for (const [file, role] of [
      ['ot-agent.yaml', 'ot'],
      ['it-agent.yaml', 'it'],
    ] as const) {
      const agent = await loadAgentConfig(join(CONTAINER_DIR, 'lab', file));
      checkConfigRole(agent, role, file);
      const url = new URL(agent.relay.url);
      assert.equal(url.hostname, 'relay', `${file}: the relay's service name`);
      assert.equal(Number(url.port), relay.listen.agents.port, `${file}: the relay's agent port`);
      for (const path of [agent.credentials, agent.state])
        assert.match(path, /^\/var\/lib\/dmz-agent\//, file);
    }
  });

  const badServices = [
    { case: 'writable root', change: { read_only: false }, finding: /read_only/ },
    { case: 'capabilities kept', change: { cap_drop: [] }, finding: /cap_drop/ },
    { case: 'privileges gained', change: { security_opt: [] }, finding: /no-new-privileges/ },
    { case: 'root', change: { user: '0:0' }, finding: /user 0:0/ },
    { case: 'a named user', change: { user: 'node' }, finding: /user node/ },
    { case: 'privileged', change: { privileged: true }, finding: /privileged/ },
    { case: 'host network', change: { network_mode: 'host' }, finding: /network_mode "host"/ },
    {
      case: 'a shell healthcheck',
      change: { healthcheck: { test: ['CMD-SHELL', 'x'] } },
      finding: /healthcheck/,
    },
    { case: 'a writable bind', change: { volumes: ['./lab/relay.yaml:/etc/r.yaml'] }, finding: /writable/ },
  ];
  for (const bad of badServices) {
    it(`a service with ${bad.case} is refused`, async () => {
      const compose = await readCompose();
      const relay = { ...compose.services.relay, ...bad.change };
      const findings = composeFindings({ services: { relay } });
      assert.ok(
        findings.some((finding) => bad.finding.test(finding)),
        findings.join('\n'),
      );
    });
  }
});
