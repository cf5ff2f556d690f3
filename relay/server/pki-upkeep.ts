/**
 * The relay's side of its CA, while it runs: notices revocations made by `dmz-pki` (another
 * process) within a fraction of a second, republishes the CRL, hands it to the TLS context and
 * cuts the revoked agents; reissues the CRL long before it expires; and, in `auto` mode, opens
 * the enrollment port only while a token is outstanding.
 */
import type { Logger } from 'pino';
import type { CertificateAuthority } from '../../pki/authority.ts';
import { crlNeedsReissue, revokedSerials, writeCrl } from '../../pki/revocation.ts';
import type { PkiState } from '../../pki/state.ts';
import { AUDIT_EVENT, type AuditLog } from './audit.ts';

/** Store polls: 4 a second keeps "revoked to cut" well under the promised second. */
const REVOCATION_POLL_MS = 250;
/** CRL freshness needs no haste: checked once a minute against a validity of hours to days. */
const CRL_CHECK_MS = 60_000;
/** Outstanding tokens are checked once a second to open or close the enrollment port. */
const ENROLLMENT_CHECK_MS = 1_000;

export interface EnrollmentSwitch {
  readonly mode: 'auto' | 'on' | 'off';
  open(): Promise<void>;
  close(): Promise<void>;
}

export interface PkiUpkeepOptions {
  readonly state: PkiState;
  readonly ca: CertificateAuthority;
  readonly crlValidityMs: number;
  /** A new CRL and the full set of revoked serials: reload TLS and cut live connections. */
  readonly onCrl: (crlPem: string, revokedSerials: ReadonlySet<string>) => void;
  readonly enrollment: EnrollmentSwitch | undefined;
  readonly audit: AuditLog;
  readonly log: Logger;
}

export class PkiUpkeep {
  readonly #options: PkiUpkeepOptions;
  readonly #timers: NodeJS.Timeout[] = [];
  #revision: number;
  #lastCrlCheck = Date.now();
  #lastEnrollmentCheck = 0;
  #enrollmentOpen = false;
  #busy: Promise<void> = Promise.resolve();

  constructor(options: PkiUpkeepOptions) {
    this.#options = options;
    this.#revision = options.state.store.revision();
  }

  async start(): Promise<void> {
    if (this.#options.enrollment?.mode === 'on') await this.#setEnrollment(true);
    const timer = setInterval(() => {
      this.#busy = this.#busy
        .then(() => this.#check())
        .catch((error: unknown) => {
          this.#options.log.error({ err: error }, 'PKI upkeep failed');
        });
    }, REVOCATION_POLL_MS);
    timer.unref();
    this.#timers.push(timer);
  }

  async stop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    await this.#busy;
    await this.#setEnrollment(false);
  }

  /** Publishes a fresh CRL now and applies it (also used at start). */
  async publishCrl(reason: string): Promise<void> {
    const { state, ca, crlValidityMs, onCrl, audit } = this.#options;
    const crlPem = await writeCrl(state.stateDir, state.store, ca, new Date(), crlValidityMs);
    const revoked = revokedSerials(state.store);
    onCrl(crlPem, revoked);
    audit.record(AUDIT_EVENT.crlReissued, { reason, revoked: revoked.size });
  }

  async #check(): Promise<void> {
    const { state, crlValidityMs, enrollment } = this.#options;
    const now = Date.now();
    const revision = state.store.revision();
    if (revision !== this.#revision) {
      this.#revision = revision;
      await this.publishCrl('revocation');
    } else if (now - this.#lastCrlCheck >= CRL_CHECK_MS) {
      this.#lastCrlCheck = now;
      if (crlNeedsReissue(state.store, new Date(now), crlValidityMs)) await this.publishCrl('freshness');
    }
    if (enrollment?.mode === 'auto' && now - this.#lastEnrollmentCheck >= ENROLLMENT_CHECK_MS) {
      this.#lastEnrollmentCheck = now;
      await this.#setEnrollment(state.store.hasOutstandingTokens(new Date(now)));
    }
  }

  async #setEnrollment(open: boolean): Promise<void> {
    const { enrollment, log } = this.#options;
    if (enrollment === undefined || open === this.#enrollmentOpen) return;
    if (open) {
      // Set only once the port listens: when open() fails (EADDRINUSE) the error is logged by the
      // caller and the flag stays false, so auto mode's next check tries again (mode `on` fails
      // the relay's start instead).
      await enrollment.open();
      this.#enrollmentOpen = true;
    } else {
      this.#enrollmentOpen = false;
      await enrollment.close();
    }
    log.info({ open }, 'enrollment listener');
  }
}
