/**
 * `dmz-pki agents`: every certificate this CA has issued to an agent, renewals included, with
 * its status now (valid, expired, revoked) and the serial that renewed it.
 */
import type { CertificateRecord } from '../store.ts';
import { defineCommand, withState } from './command.ts';
import { formatTime, printJson, printTable } from './output.ts';

export const agentsCommand = defineCommand({
  words: ['agents'],
  summary: 'list every certificate issued to agents, with its status',
  usage: `Usage: dmz-pki --state DIR agents

Lists every agent certificate the CA has issued: agent name, role, serial, expiry,
status (valid, expired or revoked) and the serial of the certificate that renewed it.`,
  options: {},
  operands: [],
  async run({ values, stateDir, output }) {
    const certificates = await withState(stateDir, (state) => state.store.listCertificates());
    if (values.json === true) {
      printJson(output, certificates.map(describeCertificate));
      return;
    }
    printTable(
      output,
      ['NAME', 'ROLE', 'SERIAL', 'NOT-AFTER', 'STATUS', 'REPLACED-BY'],
      certificates.map((c) => [
        c.name,
        c.role,
        c.serialHex,
        formatTime(c.notAfter),
        c.status,
        c.replacedBy ?? '-',
      ]),
    );
  },
});

/** The record without its PEM: `agents` is an inventory, not a certificate export. */
export function describeCertificate(certificate: CertificateRecord) {
  const { name, role, serialHex: serial, status, notBefore, notAfter, issuedAt } = certificate;
  const { revokedAt, revocationReason, replacedBy } = certificate;
  return {
    name,
    role,
    serial,
    status,
    notBefore,
    notAfter,
    issuedAt,
    revokedAt,
    revocationReason,
    replacedBy,
  };
}
