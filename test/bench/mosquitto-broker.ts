/**
 * mosquitto as the benchmark's reference broker: one TLS 1.3 listener on a free loopback port that
 * requires a client certificate from the run's CA, the certificate's CN as the MQTT username (no
 * anonymous clients), no persistence. Its log (stderr, unbuffered) tells when a client has connected
 * and subscribed, so no workload has to sleep and hope. (Its start-up lines are written before the
 * log destination applies, so readiness is a successful TCP connect instead.)
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MqttTlsFiles } from './bench-pki.ts';
import { findFreePort, LineLog, waitForExit, waitForPort, type ChildProcessGroup } from './processes.ts';
import { STARTUP_TIMEOUT_MS } from './settings.ts';

/** Debian installs the broker in /usr/sbin, which is not on every user's PATH. */
const MOSQUITTO = existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto';
const STOP_TIMEOUT_MS = 3_000;

export interface MosquittoBroker {
  readonly port: number;
  readonly pid: number;
  /** As `mosquitto -h` reports it. */
  readonly version: string;
  /** The broker's log: connections and subscriptions, one per line. */
  readonly log: LineLog;
  /** Arguments every mosquitto_pub / mosquitto_sub needs to reach this broker with mTLS. */
  readonly clientArgs: readonly string[];
  /** Resolves once the broker has logged client `clientId` subscribing to `topic`. */
  waitForSubscription(clientId: string, topic: string): Promise<void>;
  /** Resolves once the broker has logged client `clientId` as connected. */
  waitForConnection(clientId: string): Promise<void>;
  stop(): Promise<void>;
}

export interface MosquittoOptions {
  /**
   * No connection and subscription log (for thousands of idle clients): waitForConnection and
   * waitForSubscription then never resolve.
   */
  readonly quiet?: boolean;
}

export async function startMosquitto(
  group: ChildProcessGroup,
  workDir: string,
  tls: MqttTlsFiles,
  options: MosquittoOptions = {},
): Promise<MosquittoBroker> {
  const port = await findFreePort();
  const configPath = join(workDir, `mosquitto-${port}.conf`);
  const quiet = options.quiet === true;
  await writeFile(
    configPath,
    [
      'per_listener_settings false',
      'persistence false',
      // Started as root, mosquitto 2 drops to the `mosquitto` user, which cannot read our 0600 keys.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      // Unbuffered, unlike stdout when piped: lines arrive as events happen.
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      ...(quiet ? [] : ['log_type notice', 'log_type subscribe']),
      'log_timestamp false',
      `connection_messages ${quiet ? 'false' : 'true'}`,
      'allow_anonymous false',
      // QoS 0 messages beyond this per-subscriber queue are dropped (default 1000); 0 = no limit, so
      // every point is delivered in both systems. The publisher's bounded count bounds the queue.
      'max_queued_messages 0',
      `listener ${port} 127.0.0.1`,
      `cafile ${tls.caFile}`,
      `certfile ${tls.serverCertFile}`,
      `keyfile ${tls.serverKeyFile}`,
      'require_certificate true',
      'use_identity_as_username true',
      'tls_version tlsv1.3',
      '',
    ].join('\n'),
  );
  const child = group.spawn(MOSQUITTO, ['-c', configPath]);
  const log = new LineLog(child.stderr!);
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) =>
      reject(new Error(`mosquitto exited during start-up (${code ?? signal}): ${log.tail()}`)),
    );
    child.once('error', (error) =>
      reject(
        new Error(`cannot run ${MOSQUITTO} (apt-get install mosquitto mosquitto-clients): ${error.message}`),
      ),
    );
  });
  exited.catch(() => undefined);
  try {
    await Promise.race([waitForPort(port, STARTUP_TIMEOUT_MS), exited]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const waitForLogLine = async (predicate: (line: string) => boolean, what: string) => {
    await Promise.race([log.waitFor(predicate, what, STARTUP_TIMEOUT_MS), exited]);
  };
  return {
    port,
    pid: child.pid!,
    version: await mosquittoVersion(),
    log,
    clientArgs: [
      ...['-h', '127.0.0.1', '-p', String(port), '--tls-version', 'tlsv1.3'],
      ...['--cafile', tls.caFile, '--cert', tls.clientCertFile, '--key', tls.clientKeyFile],
    ],
    waitForSubscription: (clientId, topic) =>
      waitForLogLine((line) => line === `${clientId} 0 ${topic}`, `${clientId} to subscribe`),
    waitForConnection: (clientId) =>
      waitForLogLine((line) => line.includes(` as ${clientId} `), `${clientId} to connect`),
    async stop() {
      child.kill('SIGTERM');
      if ((await waitForExit(child, STOP_TIMEOUT_MS)) === undefined) child.kill('SIGKILL');
    },
  };
}

function mosquittoVersion(): Promise<string> {
  return new Promise((resolve) => {
    // `-h` prints the version and usage, then exits non-zero: only its output matters.
    execFile(MOSQUITTO, ['-h'], { timeout: STARTUP_TIMEOUT_MS }, (_error, stdout) => {
      resolve(/mosquitto version (\S+)/.exec(stdout)?.[1] ?? 'unknown');
    });
  });
}
