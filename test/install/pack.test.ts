/**
 * The package as an appliance or agent host installs it: `npm pack` (which builds dist/), then
 * `npm install -g` of the tarball into a throwaway prefix, and the three commands run from that
 * prefix's bin/ on PATH: their --help, a CA made with `dmz-pki init`, and a relay started on it
 * and stopped; then that prefix as README's offline install carries it, a tarball unpacked in
 * another place, running there. The installed package must run its built JavaScript alone: no TypeScript sources,
 * no tsx.
 *
 * Slow (npm resolves the dependencies against the registry, with tarballs from the cache, and
 * better-sqlite3 compiles: about a minute and a half), so it runs as `npm run test:install`, which
 * .ci/run calls after `npm test`, and not in `npm test`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';
import { spawnChild } from '../support/child-processes.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const PACKAGE = 'dmz-relay';
/** npm install with a native build; generous for a loaded 2-core machine. */
const INSTALL_BOUND_MS = 600_000;
const COMMAND_BOUND_MS = 30_000;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function runCommand(
  file: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        cwd: options.cwd ?? ROOT,
        env: options.env ?? process.env,
        timeout: options.timeout ?? COMMAND_BOUND_MS,
      },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number')
          reject(new Error(`${file} did not run`, { cause: error }));
        else resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
      },
    );
  });
}

describe('install - npm pack, npm install -g, the commands on PATH', () => {
  let dir: string;
  let prefix: string;
  let tarball: string;
  /** Only the prefix's bin/ and the system's: nothing from this checkout's node_modules/.bin. */
  let env: NodeJS.ProcessEnv;
  let packedFiles: string[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-install-'));
    prefix = join(dir, 'prefix');
    const packed = await runCommand('npm', ['pack', '--json', '--pack-destination', dir], {
      timeout: INSTALL_BOUND_MS,
    });
    assert.equal(packed.code, 0, packed.stderr);
    // npm prints the prepack script's output before the JSON.
    const report = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
      filename: string;
      files: { path: string }[];
    }[];
    tarball = join(dir, report[0]!.filename);
    packedFiles = report[0]!.files.map((file) => file.path);
    const installed = await runCommand(
      'npm',
      ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball],
      { timeout: INSTALL_BOUND_MS },
    );
    assert.equal(installed.code, 0, installed.stderr);
    const systemPath = (process.env['PATH'] ?? '')
      .split(delimiter)
      .filter((entry) => !entry.includes('node_modules'));
    env = { ...process.env, PATH: [join(prefix, 'bin'), ...systemPath].join(delimiter) };
    delete env['DMZ_STATE_DIR'];
    delete env['DMZ_PKI_PASSPHRASE'];
    delete env['DMZ_RELAY_USE_BUILD'];
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('install - the tarball holds the build, the bins and the docs, and no TypeScript or tests', () => {
    for (const file of [
      'bin/dmz-relay.js',
      'bin/launch.js',
      'dist/relay/cli.js',
      'dist/pki/cli.js',
      'dist/agents/cli.js',
    ]) {
      assert.ok(packedFiles.includes(file), `${file} is packed`);
    }
    for (const file of [
      'deploy/systemd/dmz-relay.service',
      'deploy/systemd/dmz-agent.service',
      'deploy/systemd/low-ports.conf',
      'deploy/nftables/dmz-appliance.nft',
      'deploy/nftables/ot-agent.nft',
      'deploy/nftables/it-agent.nft',
    ]) {
      assert.ok(packedFiles.includes(file), `${file} is packed`);
    }
    assert.deepEqual(
      packedFiles.filter((file) => file.endsWith('.ts') || file.startsWith('test/')),
      [],
    );
  });

  it('install - no compiler at run time: tsx and typescript are not installed', async () => {
    const modules = join(prefix, 'lib', 'node_modules', PACKAGE);
    assert.ok(existsSync(join(modules, 'dist', 'relay', 'cli.js')));
    const dependencies = await readdir(join(modules, 'node_modules'));
    assert.ok(dependencies.includes('fastify'), dependencies.join(' '));
    for (const compiler of ['tsx', 'typescript', 'esbuild'])
      assert.ok(!dependencies.includes(compiler), compiler);
  });

  for (const command of ['dmz-relay', 'dmz-pki', 'dmz-agent']) {
    it(`install - ${command} --help runs from PATH`, async () => {
      const run = await runCommand(command, ['--help'], { cwd: dir, env });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`^Usage: ${command} `));
      assert.equal(run.stderr, '');
    });
  }

  it('install - dmz-pki init makes a CA, and dmz-relay serves it and stops on SIGTERM', async () => {
    const state = join(dir, 'state');
    const init = await runCommand(
      'dmz-pki',
      ['--state', state, 'init', '--trust-domain', 'plant.example', '--ip', '127.0.0.1'],
      { cwd: dir, env },
    );
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /^sha256:[0-9a-f]{64}\n$/);
    const usage = await runCommand('dmz-agent', ['enroll', '--dir', join(dir, 'agent')], { cwd: dir, env });
    assert.equal(usage.code, 2);
    assert.equal(
      usage.stderr,
      "dmz-agent: a token is required (--token, --token-file or --token -) (CLI_ERR_USAGE); see 'dmz-agent enroll --help'\n",
    );

    const adminPort = await freePort();
    const config = join(dir, 'relay.yaml');
    await writeFile(
      config,
      stringify({
        trustDomain: 'plant.example',
        state: './state',
        listen: {
          agents: { host: '127.0.0.1', port: 0 },
          admin: { host: '127.0.0.1', port: adminPort },
          enrollment: { host: '127.0.0.1', port: 0, mode: 'auto' },
        },
        log: { level: 'warn', audit: './audit.log' },
        policy: [{ role: 'ot' }],
      }),
    );
    const relay = spawnChild('dmz-relay', ['--config', config], {
      cwd: dir,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    relay.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let exit: number | null | undefined;
    relay.once('exit', (code) => (exit = code));
    try {
      const health = await waitFor(
        async () => {
          if (exit !== undefined) throw new Error(`dmz-relay exited ${exit}: ${stderr}`);
          const response = await fetch(`http://127.0.0.1:${adminPort}/healthz`).catch(() => undefined);
          return response?.ok === true ? ((await response.json()) as { status: string }) : undefined;
        },
        'the installed relay answers /healthz',
        COMMAND_BOUND_MS,
        100,
      );
      assert.equal(health.status, 'ok');
      relay.kill('SIGTERM');
      assert.equal(await waitFor(() => exit, 'dmz-relay exits', COMMAND_BOUND_MS), 0, stderr);
    } finally {
      if (exit === undefined) relay.kill('SIGKILL');
    }
  });

  it('install - the installed prefix, carried as a tarball to a host without the registry, runs where it is unpacked', async () => {
    const bundle = join(dir, 'bundle.tgz');
    const packed = await runCommand('tar', ['-C', prefix, '-czf', bundle, '.'], {
      cwd: dir,
      timeout: INSTALL_BOUND_MS,
    });
    assert.equal(packed.code, 0, packed.stderr);
    const elsewhere = join(dir, 'elsewhere');
    await mkdir(elsewhere);
    const unpacked = await runCommand('tar', ['-C', elsewhere, '-xzf', bundle], {
      cwd: dir,
      timeout: INSTALL_BOUND_MS,
    });
    assert.equal(unpacked.code, 0, unpacked.stderr);
    // The prefix it was made in moved away: nothing may lead back to it (an absolute link, a path
    // compiled into better-sqlite3's binding).
    const away = `${prefix}.away`;
    await rename(prefix, away);
    try {
      const systemPath = (env['PATH'] ?? '').split(delimiter).filter((entry) => !entry.startsWith(prefix));
      const there = { ...env, PATH: [join(elsewhere, 'bin'), ...systemPath].join(delimiter) };
      // init opens pki.db: better-sqlite3's native binding loads from the unpacked tree.
      const init = await runCommand(
        'dmz-pki',
        [
          '--state',
          join(dir, 'state-elsewhere'),
          'init',
          '--trust-domain',
          'plant.example',
          '--ip',
          '127.0.0.1',
        ],
        { cwd: dir, env: there },
      );
      assert.equal(init.code, 0, init.stderr);
      assert.match(init.stdout, /^sha256:[0-9a-f]{64}\n$/);
      const status = await runCommand('dmz-pki', ['--state', join(dir, 'state-elsewhere'), 'status'], {
        cwd: dir,
        env: there,
      });
      assert.equal(status.code, 0, status.stderr);
    } finally {
      await rename(away, prefix);
    }
  });
});
