/**
 * nats-server (Debian's) as a reference: one TLS listener on a free loopback port that requires a
 * client certificate from the run's CA (`verify: true`), with the same server certificate as the
 * relay and mosquitto, no authorization beyond that, no JetStream. It is driven by the official
 * Node client (nats.js, bench-clients.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MqttTlsFiles } from './bench-pki.ts';
import { findFreePort, LineLog, waitForExit, waitForPort, type ChildProcessGroup } from './processes.ts';
import { STARTUP_TIMEOUT_MS } from './settings.ts';

/** Debian installs the server in /usr/sbin, which is not on every user's PATH. */
const NATS_SERVER = existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';
const STOP_TIMEOUT_MS = 3_000;
/** Seconds a client may take over its TLS handshake: the relay's default (config.ts tls.handshakeTimeoutMs). */
const TLS_TIMEOUT_SECONDS = 10;

export interface NatsServer {
  readonly url: string;
  readonly pid: number;
  readonly version: string;
  stop(): Promise<void>;
}

export async function startNatsServer(
  group: ChildProcessGroup,
  workDir: string,
  tls: MqttTlsFiles,
): Promise<NatsServer> {
  const port = await findFreePort();
  const configPath = join(workDir, `nats-${port}.conf`);
  await writeFile(
    configPath,
    [
      `listen: "127.0.0.1:${port}"`,
      'tls {',
      `  cert_file: "${tls.serverCertFile}"`,
      `  key_file: "${tls.serverKeyFile}"`,
      `  ca_file: "${tls.caFile}"`,
      '  verify: true',
      `  timeout: ${TLS_TIMEOUT_SECONDS}`,
      '}',
      '',
    ].join('\n'),
  );
  const child = group.spawn(NATS_SERVER, ['-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  const log = new LineLog(child.stderr!);
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) =>
      reject(new Error(`nats-server exited during start-up (${code ?? signal}): ${log.tail()}`)),
    );
    child.once('error', (error) =>
      reject(new Error(`cannot run ${NATS_SERVER} (apt-get install nats-server): ${error.message}`)),
    );
  });
  exited.catch(() => undefined);
  try {
    await Promise.race([waitForPort(port, STARTUP_TIMEOUT_MS), exited]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    url: `tls://127.0.0.1:${port}`,
    pid: child.pid!,
    version: await natsServerVersion(),
    async stop() {
      child.kill('SIGTERM');
      if ((await waitForExit(child, STOP_TIMEOUT_MS)) === undefined) child.kill('SIGKILL');
    },
  };
}

function natsServerVersion(): Promise<string> {
  return new Promise((resolve) => {
    execFile(NATS_SERVER, ['--version'], { timeout: STARTUP_TIMEOUT_MS }, (_error, stdout) => {
      resolve(/v(\d+\.\d+\.\d+)/.exec(stdout)?.[1] ?? 'unknown');
    });
  });
}
