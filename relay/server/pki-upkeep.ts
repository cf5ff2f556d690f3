/**
 * The relay's side of its CA, while it runs: notices revocations made by `dmz-pki` (another
 * process) within a fraction of a second, republishes the CRL, hands it to the TLS context and
 * cuts the revoked agents; reissues the CRL long before it expires; loads the relay's server
 * certificate when `dmz-pki relay-cert` has reissued it (pki/relay-certificate.ts); and, in `auto`
 * mode, opens the enrollment port only while a token is outstanding.
 *
 * Revocation and the enrollment switch run on separate chains: opening or closing a listener
 * involves its clients (a close waits for requests in flight), and revocation must be enforced
 * within a second whatever any client of any listener does.
 */
import type { Logger } from 'pino';
import type { CertificateAuthority } from '../../pki/authority.ts';
import {
  announcedRelayCertificateSerial,
  readRelayCertificate,
  type RelayServerCertificate,
} from '../../pki/relay-certificate.ts';
import { crlNeedsReissue, revokedSerials, writeCrl, type IssuedCrl } from '../../pki/revocation.ts';
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
  /** Watches for a reissued server certificate; absent, the one in force stays. */
  readonly serverCertificate?: {
    /** The serial of the server certificate the relay started with. */
    readonly serialHex: string;
    /** Load it into every listener, keeping every other option. */
    readonly onReissue: (certificate: RelayServerCertificate) => void;
  };
  readonly enrollment: EnrollmentSwitch | undefined;
  readonly audit: AuditLog;
  readonly log: Logger;
}

export class PkiUpkeep {
  readonly #options: PkiUpkeepOptions;
  readonly #timers: NodeJS.Timeout[] = [];
  #revision: number;
  #lastCrlCheck = Date.now();
  #enrollmentOpen = false;
  #serverCertificateSerial: string | undefined;
  /** The announced serial last found not matching the files, logged once rather than 4 times a second. */
  #unmatchedSerial: string | undefined;
  /** The revocation and CRL chain: never waits on anything but the store and the CA key. */
  #revocations: Promise<void> = Promise.resolve();
  /** The enrollment switch's chain. */
  #switching: Promise<void> = Promise.resolve();

  constructor(options: PkiUpkeepOptions) {
    this.#options = options;
    this.#revision = options.state.store.revision();
    this.#serverCertificateSerial = options.serverCertificate?.serialHex;
  }

  /** Whether the enrollment port is (being) held open. */
  get enrollmentOpen(): boolean {
    return this.#enrollmentOpen;
  }

  async start(): Promise<void> {
    const { enrollment } = this.#options;
    if (enrollment?.mode === 'on') await this.#setEnrollment(true);
    this.#every(REVOCATION_POLL_MS, () => {
      this.#revocations = this.#revocations.then(() => this.#checkRevocations()).catch(this.#logFailure);
    });
    if (enrollment?.mode === 'auto') {
      this.#every(ENROLLMENT_CHECK_MS, () => {
        this.#switching = this.#switching.then(() => this.#checkEnrollment()).catch(this.#logFailure);
      });
    }
  }

  async stop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    await Promise.all([this.#revocations, this.#switching]);
    await this.#setEnrollment(false);
  }

  /** Publishes a fresh CRL now and applies it. */
  async publishCrl(reason: string): Promise<void> {
    const { state, ca, crlValidityMs, onCrl, audit } = this.#options;
    const crl = await writeCrl({
      stateDir: state.stateDir,
      store: state.store,
      ca,
      validityMs: crlValidityMs,
      // Before the file is replaced, as dmz-pki's records: no kill leaves a CRL nobody recorded.
      record: (issued) => recordCrlReissue(audit, reason, issued),
    });
    onCrl(crl.pem, revokedSerials(state.store));
  }

  #every(intervalMs: number, run: () => void): void {
    const timer = setInterval(run, intervalMs);
    timer.unref();
    this.#timers.push(timer);
  }

  readonly #logFailure = (error: unknown): void => {
    this.#options.log.error({ err: error }, 'PKI upkeep failed');
  };

  async #checkRevocations(): Promise<void> {
    const { state, crlValidityMs } = this.#options;
    const now = Date.now();
    const revision = state.store.revision();
    if (revision !== this.#revision) {
      this.#revision = revision;
      await this.publishCrl('revocation');
    } else if (now - this.#lastCrlCheck >= CRL_CHECK_MS) {
      this.#lastCrlCheck = now;
      if (crlNeedsReissue(state.store, new Date(now), crlValidityMs)) await this.publishCrl('freshness');
    }
    await this.#checkServerCertificate();
  }

  /** On the revocation chain: both replace the TLS context, and must not interleave. */
  async #checkServerCertificate(): Promise<void> {
    const { state, serverCertificate, log } = this.#options;
    if (serverCertificate === undefined) return;
    const announced = announcedRelayCertificateSerial(state.store);
    if (announced === undefined || announced === this.#serverCertificateSerial) return;
    let certificate: RelayServerCertificate | undefined;
    try {
      certificate = await readRelayCertificate(state.stateDir);
    } catch (error) {
      // Mid-way through a reissue (the key replaced, the certificate not yet): next poll.
      if (this.#unmatchedSerial !== announced) log.warn({ err: error }, 'relay certificate not loadable yet');
      this.#unmatchedSerial = announced;
      return;
    }
    if (certificate.serialHex !== announced) {
      if (this.#unmatchedSerial !== announced) {
        log.warn(
          { announced, found: certificate.serialHex },
          'relay certificate files differ from the store',
        );
      }
      this.#unmatchedSerial = announced;
      return;
    }
    serverCertificate.onReissue(certificate);
    this.#serverCertificateSerial = announced;
    this.#unmatchedSerial = undefined;
  }

  async #checkEnrollment(): Promise<void> {
    await this.#setEnrollment(this.#options.state.store.hasOutstandingTokens(new Date()));
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

/** The relay's record of a CRL it reissues (at start, at a revocation, or to keep it fresh). */
export function recordCrlReissue(audit: AuditLog, reason: string, crl: IssuedCrl): void {
  audit.record(AUDIT_EVENT.crlReissued, {
    reason,
    revoked: crl.revoked,
    crlNumber: crl.crlNumber,
    nextUpdate: crl.nextUpdate.toISOString(),
  });
}
