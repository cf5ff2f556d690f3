/**
 * `dmz-pki relay-cert`: reissues the relay's server certificate, for new names or addresses or
 * before it expires, from the same CA: no agent re-enrolls, and a running relay loads it within
 * a second without dropping a connection (pki/relay-certificate.ts says how).
 */
import { defineCommand, invalidArgument, quote, withAuditedState } from './command.ts';
import { formatTime, printFields, printJson, printNote } from './output.ts';
import {
  loadCertificateAuthority,
  PASSPHRASE_HELP,
  PASSPHRASE_OPTIONS,
  readPassphrase,
} from './passphrase.ts';

export const relayCertCommand = defineCommand({
  words: ['relay-cert'],
  summary: "reissue the relay's server certificate (new names, or before it expires)",
  usage: `Usage: dmz-pki --state DIR relay-cert [--dns NAME]... [--ip ADDR]... [options]

Issues the relay a new server certificate, for a new key, from the same CA: agents trust the
CA, so none re-enrolls. A running relay loads it within a second; connections open stay up.
Without --dns and --ip the names and addresses of the current certificate are kept; with
either, the certificate answers to exactly those given.

Options:
  --dns NAME           a DNS name agents use to reach the relay (repeatable)
  --ip ADDR            an IP address agents use to reach the relay (repeatable)
  --days N             validity in days (default: 365, at most 825, never past the CA's)
${PASSPHRASE_HELP}`,
  options: {
    dns: { type: 'string', multiple: true },
    ip: { type: 'string', multiple: true },
    days: { type: 'string' },
    ...PASSPHRASE_OPTIONS,
  },
  operands: [],
  async run({ values, stateDir, env, output }) {
    const [{ isCertifiableHostname, isCertifiableIpAddress }, relayCertificate] = await Promise.all([
      import('../authority.ts'),
      import('../relay-certificate.ts'),
    ]);
    const { canonicalIpAddress, readRelayCertificateNames, reissueRelayCertificate } = relayCertificate;
    const lifetimeDays =
      values.days === undefined
        ? relayCertificate.RELAY_CERTIFICATE_DAYS
        : parseDays(values.days, relayCertificate.RELAY_CERTIFICATE_MAX_DAYS);
    const badName = values.dns?.find((name) => !isCertifiableHostname(name));
    if (badName !== undefined)
      throw invalidArgument(`--dns must be a lower-case host name: ${quote(badName)}`);
    const badAddress = values.ip?.find((ip) => !isCertifiableIpAddress(ip));
    if (badAddress !== undefined) {
      throw invalidArgument(`--ip must be an IPv4 or hex-form IPv6 address: ${quote(badAddress)}`);
    }
    const passphrase = await readPassphrase(values['passphrase-file'], env);
    const issued = await withAuditedState(stateDir, 'relay-cert', async (state, audit) => {
      audit.about({
        lifetimeDays,
        ...(values.dns === undefined ? {} : { dnsNames: values.dns }),
        ...(values.ip === undefined ? {} : { ipAddresses: values.ip }),
      });
      const ca = await loadCertificateAuthority(state, passphrase);
      // The names come from the certificate alone, not from the pair: a reissue cut between its
      // two renames leaves a key that does not match, and running it again is the remedy.
      const namesGiven = values.dns !== undefined || values.ip !== undefined;
      const current = await readRelayCertificateNames(stateDir, { replacing: namesGiven });
      const names = namesGiven
        ? { dnsNames: values.dns ?? [], ipAddresses: (values.ip ?? []).map(canonicalIpAddress) }
        : current;
      const certificate = await reissueRelayCertificate({
        stateDir,
        store: state.store,
        ca,
        lifetimeDays,
        ...names,
        // Recorded before the pair is replaced: no new pair nobody knows of, even after a kill.
        record: (issued) =>
          audit.commitBefore(
            () => ({ serial: issued.serialHex, notAfter: issued.notAfter.toISOString(), ...names }),
            'the relay certificate was not replaced',
          ),
      });
      const dropped = [
        ...current.dnsNames.filter((name) => !names.dnsNames.includes(name)),
        ...current.ipAddresses.filter((ip) => !names.ipAddresses.includes(ip)),
      ];
      return { ...certificate, ...names, dropped };
    });
    // Agents check the relay's name: one that reaches it by a name dropped here refuses it from its
    // next connection on. Meant when the name is retired; a fleet outage when it was a typo.
    if (issued.dropped.length > 0) {
      printNote(
        output,
        `the new certificate no longer answers to ${issued.dropped.map(quote).join(', ')}: ` +
          'agents that reach the relay by it will refuse it',
      );
    }
    const result = {
      serial: issued.serialHex,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      dnsNames: issued.dnsNames,
      ipAddresses: issued.ipAddresses,
    };
    if (values.json === true) {
      printJson(output, result);
      return;
    }
    printFields(output, [
      ['serial', result.serial],
      ['expires', formatTime(result.notAfter)],
      ['DNS names', result.dnsNames.join(' ') || '-'],
      ['IP addresses', result.ipAddresses.join(' ') || '-'],
    ]);
  },
});

function parseDays(text: string, max: number): number {
  const days = /^[1-9][0-9]*$/.test(text) ? Number(text) : NaN;
  if (!(days <= max)) throw invalidArgument(`--days must be a whole number from 1 to ${max}: ${quote(text)}`);
  return days;
}
