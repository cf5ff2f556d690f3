/**
 * `dmz-pki status`: what an operator checks first. Which CA this is, when its certificates run
 * out (warned on stderr within 30 days: pki/expiry-warnings.ts), how many agents hold a valid
 * certificate, what tokens are outstanding, whether the CRL is current (an expired CRL makes
 * the relay refuse every agent), and whether the audit log verifies (pki/audit-verify.ts).
 */
import { X509Certificate } from 'node:crypto';
import { resolve } from 'node:path';
import { readAuditHead, readAuditLog } from '../audit-log.ts';
import { verifyAuditLog } from '../audit-verify.ts';
import { expiryWarnings } from '../expiry-warnings.ts';
import { readState } from '../state-layout.ts';
import type { CertificateRecord, CertificateStatus } from '../store.ts';
import { defineCommand, withState } from './command.ts';
import { inspectCrl } from './crl.ts';
import { formatTime, printFields, printJson, printNote } from './output.ts';

type StatusCounts = Record<CertificateStatus, number>;

export const statusCommand = defineCommand({
  words: ['status'],
  summary: 'summarize the CA: identity, expiry dates, agents, tokens, CRL',
  usage: `Usage: dmz-pki --state DIR status

Shows the trust domain, the CA fingerprint, when the CA and the relay's server certificate
expire, agents and certificates by status, active tokens, the audit log's records and whether
they verify, and the CRL's next update.
Warns on stderr (and in --json, under "warnings") when the relay certificate or the CA
expires within 30 days, and on stderr when the audit log does not verify.`,
  options: {},
  operands: [],
  async run({ values, stateDir, output }) {
    const status = await withState(stateDir, async (state) => {
      const relayCertPem = await readState(state.stateDir, 'relayCertificate');
      const certificates = state.store.listCertificates();
      const crl = await inspectCrl(state);
      const auditLog = verifyAuditLog(
        readAuditLog(state.stateDir),
        readAuditHead(state.store),
        state.caFingerprint,
      );
      const caNotAfter = notAfter(state.caCertPem);
      const relayCertificateNotAfter = notAfter(relayCertPem);
      return {
        stateDir: resolve(state.stateDir),
        trustDomain: state.trustDomain,
        caFingerprint: state.caFingerprint,
        caNotAfter,
        relayCertificateNotAfter,
        enrollmentUrls: state.enrollmentUrls,
        agents: countAgents(certificates),
        certificates: countBy(certificates.map((c) => c.status)),
        activeTokens: state.store.listTokens().length,
        crl: {
          thisUpdate: crl.summary.thisUpdate,
          nextUpdate: crl.summary.nextUpdate,
          revokedSerials: crl.summary.revokedSerials.length,
          unpublishedSerials: crl.unpublishedSerials.length,
          needsReissue: crl.needsReissue,
        },
        auditLog: {
          records: auditLog.records.length,
          intact: auditLog.problem === undefined,
          ...(auditLog.problem === undefined ? {} : { problem: auditLog.problem }),
        },
        warnings: expiryWarnings({ relay: relayCertificateNotAfter, ca: caNotAfter }),
      };
    });
    for (const warning of status.warnings) printNote(output, `warning: ${warning.message}`);
    const { auditLog } = status;
    if (!auditLog.intact) {
      printNote(output, "warning: the audit log does not verify: run 'dmz-pki audit --verify'");
    }
    if (values.json === true) {
      printJson(output, status);
      return;
    }
    const { crl } = status;
    const pending =
      crl.unpublishedSerials > 0 ? `, ${crl.unpublishedSerials} revocation(s) not yet on it` : '';
    printFields(output, [
      ['state directory', status.stateDir],
      ['trust domain', status.trustDomain],
      ['CA fingerprint', status.caFingerprint],
      ['CA expires', formatTime(status.caNotAfter)],
      ['relay cert expires', formatTime(status.relayCertificateNotAfter)],
      ['enrollment URLs', status.enrollmentUrls.join(' ')],
      ['agents', formatCounts(status.agents)],
      ['certificates', formatCounts(status.certificates)],
      ['active tokens', String(status.activeTokens)],
      [
        'audit log',
        auditLog.intact
          ? `${auditLog.records} record(s), intact`
          : `does not verify${auditLog.problem?.line === undefined ? '' : ` from line ${auditLog.problem.line}`}`,
      ],
      [
        'CRL next update',
        `${formatTime(crl.nextUpdate)} (lists ${crl.revokedSerials} revoked serial(s)${pending})`,
      ],
    ]);
  },
});

function notAfter(certPem: string): Date {
  return new Date(new X509Certificate(certPem).validTo);
}

/** An agent is valid while any of its certificates is (renewal overlaps); otherwise as its latest. */
function countAgents(certificates: readonly CertificateRecord[]): StatusCounts {
  const byName = new Map<string, CertificateStatus>();
  // listCertificates is in issue order: a later certificate overrides, except over a valid one.
  for (const { name, status } of certificates) {
    if (byName.get(name) !== 'valid') byName.set(name, status);
  }
  return countBy([...byName.values()]);
}

function countBy(statuses: readonly CertificateStatus[]): StatusCounts {
  const counts: StatusCounts = { valid: 0, expired: 0, revoked: 0 };
  for (const status of statuses) counts[status] += 1;
  return counts;
}

function formatCounts(counts: StatusCounts): string {
  return `${counts.valid} valid, ${counts.expired} expired, ${counts.revoked} revoked`;
}
