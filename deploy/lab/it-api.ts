/**
 * The IT agent's local API in the lab: its certificate and bearer token, made as an IT admin
 * would, and the API called as a user on the IT network calls it: curl, from another host, over
 * TLS checked against that certificate, with the token (sent from a header file, so it is in no
 * process list).
 */
import { randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool } from '../../test/support/system-tools.ts';
import { LAB_PORTS } from './ports.ts';
import { IT_HOST, type LabHost } from './zones.ts';

/** The IT agent's API as the IT network reaches it: its certificate (self-signed) and bearer token. */
export interface LabApi {
  readonly certFile: string;
  readonly keyFile: string;
  readonly tokenFile: string;
  readonly token: string;
}

/** A certificate for the IT host's address (openssl, one day) and a random bearer token, all 0600. */
export async function prepareApi(hostDir: string): Promise<LabApi> {
  const certFile = join(hostDir, 'api.pem');
  const keyFile = join(hostDir, 'api-key.pem');
  const tokenFile = join(hostDir, 'api-token');
  const made = await runTool('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=it-agent',
    '-addext',
    `subjectAltName=IP:${IT_HOST.address}`,
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  if (made.status !== 0) throw new Error(`openssl could not make the API certificate: ${made.stderr.trim()}`);
  await chmod(keyFile, 0o600);
  const token = randomBytes(32).toString('hex');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  return { certFile, keyFile, tokenFile, token };
}

/** curl's own bound on one call: a write waits for the PLC through the relay, within seconds. */
const CALL_TIMEOUT_SECONDS = 20;

export interface ApiAnswer {
  readonly status: number;
  readonly body: unknown;
}

export async function callItApi(
  from: LabHost,
  api: LabApi,
  request: { readonly method: 'GET' | 'POST'; readonly path: string; readonly body?: unknown },
): Promise<ApiAnswer> {
  const headerFile = join(api.tokenFile, '..', 'api-headers');
  const headers = [`authorization: Bearer ${api.token}`];
  if (request.body !== undefined) headers.push('content-type: application/json');
  await writeFile(headerFile, `${headers.join('\n')}\n`, { mode: 0o600 });
  const run = await runTool('ip', [
    'netns',
    'exec',
    from.namespace,
    'curl',
    '--silent',
    '--show-error',
    '--max-time',
    String(CALL_TIMEOUT_SECONDS),
    '--cacert',
    api.certFile,
    '--header',
    `@${headerFile}`,
    '--request',
    request.method,
    ...(request.body === undefined ? [] : ['--data', JSON.stringify(request.body)]),
    // The status on a line of its own after the body.
    '--write-out',
    '\n%{http_code}',
    `https://${IT_HOST.address}:${LAB_PORTS.api}${request.path}`,
  ]);
  if (run.status !== 0)
    throw new Error(`curl from ${from.zone} to the IT API: ${run.stderr.trim()} (${run.status})`);
  const split = run.stdout.lastIndexOf('\n');
  const text = run.stdout.slice(0, split);
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: Number(run.stdout.slice(split + 1)), body };
}
