/**
 * `dmz-pki init`: creates the CA, the relay's server certificate and the token-signing key in a
 * new state directory, and prints the CA's SPKI fingerprint, the pin agents check on first contact.
 */
import { resolve } from 'node:path';
import { DEFAULT_PORTS } from '../../relay/protocol/default-ports.ts';
import { isTrustDomain } from '../../relay/protocol/identity.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import {
  defineCommand,
  invalidArgument,
  quote,
  recordRefusalOverState,
  requireOption,
  usageError,
} from './command.ts';
import { checkEnrollmentUrls } from './enrollment-urls.ts';
import { printJson } from './output.ts';
import { PASSPHRASE_HELP, PASSPHRASE_OPTIONS, readPassphrase } from './passphrase.ts';

export const initCommand = defineCommand({
  words: ['init'],
  summary: "create the CA, the relay's server certificate and the token-signing key",
  usage: `Usage: dmz-pki --state DIR init --trust-domain DOMAIN (--dns NAME | --ip ADDR)... [options]

Creates a new certificate authority in DIR (refused if one exists) and prints the SHA-256
fingerprint of its public key (sha256:...), which every enrollment token carries.

Options:
  --trust-domain D     SPIFFE trust domain of agent identities, e.g. plant.example (required)
  --dns NAME           a DNS name agents use to reach the relay (repeatable)
  --ip ADDR            an IP address agents use to reach the relay (repeatable)
                       at least one --dns or --ip is required
  --enroll-url URL     enrollment endpoint written into tokens (repeatable;
                       default: https://<first --dns, else first --ip>:${DEFAULT_PORTS.enrollment})
${PASSPHRASE_HELP}
                       (given: the CA key and the token-signing key are encrypted)`,
  options: {
    'trust-domain': { type: 'string' },
    dns: { type: 'string', multiple: true },
    ip: { type: 'string', multiple: true },
    'enroll-url': { type: 'string', multiple: true },
    ...PASSPHRASE_OPTIONS,
  },
  operands: [],
  async run({ values, stateDir, env, output }) {
    const trustDomain = requireOption(values['trust-domain'], '--trust-domain');
    const dnsNames = values.dns ?? [];
    const ipAddresses = values.ip ?? [];
    // The CA's code (node-forge) loads only for a command line that can run.
    const [{ isCertifiableHostname, isCertifiableIpAddress }, { initializeState }] = await Promise.all([
      import('../authority.ts'),
      import('../state.ts'),
    ]);
    if (dnsNames.length === 0 && ipAddresses.length === 0) {
      throw usageError('give at least one --dns NAME or --ip ADDR: how agents reach the relay');
    }
    if (!isTrustDomain(trustDomain)) {
      throw invalidArgument(
        `--trust-domain must be a lower-case DNS-like name (a-z, 0-9, '.', '-', '_'): ${quote(trustDomain)}`,
      );
    }
    const badName = dnsNames.find((name) => !isCertifiableHostname(name));
    if (badName !== undefined) {
      throw invalidArgument(`--dns must be a lower-case host name: ${quote(badName)}`);
    }
    const badAddress = ipAddresses.find((ip) => !isCertifiableIpAddress(ip));
    if (badAddress !== undefined) {
      throw invalidArgument(`--ip must be an IPv4 or hex-form IPv6 address: ${quote(badAddress)}`);
    }
    const enrollmentUrls = checkEnrollmentUrls(
      values['enroll-url'] ?? [defaultEnrollmentUrl(dnsNames, ipAddresses)],
      '--enroll-url',
    );
    const passphrase = await readPassphrase(values['passphrase-file'], env);
    const { caFingerprint } = await initializeState({
      stateDir,
      trustDomain,
      dnsNames,
      ipAddresses,
      enrollmentUrls,
      ...(passphrase === undefined ? {} : { passphrase }),
    }).catch(async (error: unknown) => {
      // The CA there keeps a record that someone tried to make another over it.
      if (error instanceof DmzError && error.code === 'PKI_ERR_ALREADY_INITIALIZED') {
        await recordRefusalOverState(stateDir, 'init', error);
      }
      throw error;
    });
    if (values.json === true) {
      printJson(output, { caFingerprint, stateDir: resolve(stateDir), trustDomain });
    } else {
      output.stdout(`${caFingerprint}\n`);
    }
  },
});

function defaultEnrollmentUrl(dnsNames: readonly string[], ipAddresses: readonly string[]): string {
  const [dnsName] = dnsNames;
  const [ip = ''] = ipAddresses;
  // RFC 3986 section 3.2.2: an IPv6 literal in a URL is bracketed.
  const host = dnsName ?? (ip.includes(':') ? `[${ip}]` : ip);
  return `https://${host}:${DEFAULT_PORTS.enrollment}`;
}
