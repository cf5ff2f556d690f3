/**
 * The benchmark's CA, administered the way an operator does it: `dmz-pki` as a child process for
 * init, tokens and revocation, and the agent's own enrollment code (agents/enroll.ts, what
 * `dmz-agent enroll` runs) to turn a token into credentials.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { enrollAgent } from '../../agents/enroll.ts';
import { loadCredentials, type AgentCredentialSet } from '../../agents/credentials.ts';
import type { Role } from '../../relay/protocol/identity.ts';
import { CLI_TIMEOUT_MS } from './attack-settings.ts';
import { runCommand, type ChildProcessGroup, type CommandResult } from './processes.ts';

const PKI_COMMAND = fileURLToPath(new URL('../../bin/dmz-pki.js', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Agents enroll over loopback: the relay's certificate must name 127.0.0.1 for the CA pin check. */
const RELAY_ADDRESS = '127.0.0.1';

export interface CreatedToken {
  readonly token: string;
  readonly jti: string;
}

export interface AgentRevocation {
  /** performance.now() at the spawn of `dmz-pki revoke` and at its exit. */
  readonly startedAt: number;
  readonly exitedAt: number;
  /** Date.now() at the spawn: revokedAt is wall-clock time in the store, so it is compared with this. */
  readonly startedAtEpochMs: number;
  /** The store's revocation time of the agent's certificate (`revoked_at`, milliseconds since the epoch). */
  readonly revokedAtEpochMs: number;
}

export class PkiCli {
  readonly stateDir: string;
  readonly trustDomain: string;
  readonly #group: ChildProcessGroup;

  constructor(group: ChildProcessGroup, stateDir: string, trustDomain: string) {
    this.#group = group;
    this.stateDir = stateDir;
    this.trustDomain = trustDomain;
  }

  /** `dmz-pki init`: a new CA whose relay certificate names the loopback address. */
  async init(): Promise<void> {
    await this.#run(['init', '--trust-domain', this.trustDomain, '--ip', RELAY_ADDRESS]);
  }

  /** `dmz-pki token create`, with the enrollment URL of the relay listening on `enrollmentPort`. */
  async createToken(name: string, role: Role, enrollmentPort: number): Promise<CreatedToken> {
    const url = `https://${RELAY_ADDRESS}:${enrollmentPort}`;
    const result = await this.#run([
      'token',
      'create',
      '--name',
      name,
      '--role',
      role,
      '--url',
      url,
      '--json',
    ]);
    return JSON.parse(result.stdout) as CreatedToken;
  }

  /** `dmz-pki token revoke JTI`. */
  async revokeToken(jti: string): Promise<void> {
    await this.#run(['token', 'revoke', jti]);
  }

  /** `dmz-pki revoke NAME`, timed from its spawn; the revocation time is the store's own. */
  async revokeAgent(name: string): Promise<AgentRevocation> {
    const startedAtEpochMs = Date.now();
    const result = await this.#run(['revoke', name, '--reason', 'bench:attack', '--json']);
    const output = JSON.parse(result.stdout) as { revoked: { revokedAt: string }[] };
    const revokedAt = output.revoked[0]?.revokedAt;
    if (revokedAt === undefined) throw new Error(`dmz-pki revoke ${name} revoked no certificate`);
    return {
      startedAt: result.startedAt,
      exitedAt: result.exitedAt,
      startedAtEpochMs,
      revokedAtEpochMs: Date.parse(revokedAt),
    };
  }

  async #run(args: readonly string[]): Promise<CommandResult> {
    const result = await runCommand(
      this.#group,
      process.execPath,
      [PKI_COMMAND, '--state', this.stateDir, ...args],
      {
        cwd: REPO_ROOT,
        timeoutMs: CLI_TIMEOUT_MS,
      },
    );
    if (result.status !== 0) {
      throw new Error(`dmz-pki ${args.slice(0, 2).join(' ')} failed (${result.status}): ${result.stderr}`);
    }
    return result;
  }
}

/**
 * Enrolls with `token` as `dmz-agent enroll` does (key made here, CA pinned from the token, CSR
 * over the enrollment port) into `workDir/agents/<name>`, and loads what it stored.
 */
export async function enrollWithToken(
  workDir: string,
  name: string,
  token: string,
): Promise<AgentCredentialSet> {
  const dir = join(workDir, 'agents', name);
  await enrollAgent({ token, dir, timeoutMs: CLI_TIMEOUT_MS });
  return loadCredentials(dir);
}
