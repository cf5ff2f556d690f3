/**
 * Certificates of the appliance itself that run out soon: the relay's server certificate (every
 * agent refuses the relay once it expires: reissue with `dmz-pki relay-cert`) and the CA (every
 * certificate it signed goes with it: plan a new CA and re-enrollment well ahead).
 */
import { DAY_MS } from './lifetimes.ts';

/**
 * Thirty days: a monthly maintenance round sees the warning at least once before expiry, and
 * the common cadence of certificate monitoring (Let's Encrypt mails at 20 and 10 days left).
 */
export const EXPIRY_WARNING_DAYS = 30;

export type ApplianceCertificate = 'relay' | 'ca';

export interface ExpiryWarning {
  readonly certificate: ApplianceCertificate;
  readonly notAfter: Date;
  /** Whole days left, rounded down; 0 or less once expired. */
  readonly daysLeft: number;
  readonly message: string;
}

const REMEDY: Readonly<Record<ApplianceCertificate, string>> = {
  relay: "reissue it with 'dmz-pki relay-cert'",
  ca: 'plan a new CA and the re-enrollment of every agent',
};
const LABEL: Readonly<Record<ApplianceCertificate, string>> = {
  relay: "the relay's server certificate",
  ca: 'the CA certificate',
};

/** A warning for each certificate within EXPIRY_WARNING_DAYS of its end (or past it). */
export function expiryWarnings(
  notAfter: Readonly<Record<ApplianceCertificate, Date>>,
  now: Date = new Date(),
): ExpiryWarning[] {
  const warnings: ExpiryWarning[] = [];
  for (const certificate of ['relay', 'ca'] as const) {
    const end = notAfter[certificate];
    const leftMs = end.getTime() - now.getTime();
    if (leftMs > EXPIRY_WARNING_DAYS * DAY_MS) continue;
    const daysLeft = Math.floor(leftMs / DAY_MS);
    const when = leftMs <= 0 ? 'has expired' : `expires in ${daysLeft} day(s)`;
    warnings.push({
      certificate,
      notAfter: end,
      daysLeft,
      message: `${LABEL[certificate]} ${when} (${end.toISOString()}): ${REMEDY[certificate]}`,
    });
  }
  return warnings;
}
