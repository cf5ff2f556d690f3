/**
 * The historian's API as the demo uses it: its one user, `operator` of role write (the API takes a
 * write from a named user of that role alone), made as an operator makes one, with `dmz-agent api
 * user add`; and the two reads the demo makes with that user's credentials (the points it prints,
 * the relay link it watches after a revoke).
 */
import { randomBytes } from 'node:crypto';
import { run } from './commands.ts';
import { OPERATOR } from './configs.ts';

/** The operator's password: 16 characters of base64url, new for each run, far past guessing. */
const PASSWORD_BYTES = 12;

/** The API's address, and the Authorization header of its user (RFC 7617 basic). */
export interface HistorianApi {
  readonly url: string;
  readonly authorization: string;
}

export interface ApiPoint {
  readonly topic: string;
  readonly value: unknown;
  readonly quality: string;
  readonly reason?: string;
  readonly unit?: string;
}

/**
 * Makes the operator's password for this run and its scrypt hash in `hashFile` (0600), which
 * it.yaml names; returns the password, which the demo prints and the API never keeps.
 */
export async function addOperator(hashFile: string): Promise<string> {
  const password = randomBytes(PASSWORD_BYTES).toString('base64url');
  const argv = ['api', 'user', 'add', OPERATOR.name, '--role', 'write', '--password-hash-file', hashFile];
  await run('dmz-agent', [...argv, '--password-file', '-'], `${password}\n`);
  return password;
}

export function historianApi(port: number, password: string): HistorianApi {
  return {
    url: `http://127.0.0.1:${port}/`,
    authorization: `Basic ${Buffer.from(`${OPERATOR.name}:${password}`).toString('base64')}`,
  };
}

export async function points(api: HistorianApi): Promise<ApiPoint[]> {
  const response = await fetch(`${api.url}api/v1/points`, { headers: { authorization: api.authorization } });
  return ((await response.json()) as { points: ApiPoint[] }).points;
}

export async function relayConnected(api: HistorianApi): Promise<boolean> {
  const response = await fetch(`${api.url}api/v1/status`, { headers: { authorization: api.authorization } });
  return ((await response.json()) as { agent: { relay: { connected: boolean } } }).agent.relay.connected;
}
