/**
 * How a `dmz-pki` command is audited (the log itself: audit-log.ts). A command that changes state
 * runs in `withAuditedState` (commands/command.ts): the log is checked writable before anything
 * happens, the command says what it acts on as it learns it (`about`), and `commit` makes its
 * change and appends its record in one store transaction. A command refused once the state is open (a wrong passphrase,
 * an unknown agent, a used token) is recorded as refused, with the refusal's code, and the
 * refusal reaches the operator either way. A command whose change is files outside the store
 * (relay-cert, crl, backup) commits its record before it writes them (`commitBefore`), so that a
 * kill between the two leaves a record of what may not have happened, never a change without
 * one; a failure after it is recorded as `failed`.
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { DmzError } from '../relay/protocol/errors.ts';
import { appendAuditRecord, type AuditedState } from './audit-log.ts';
import type { AuditActor, AuditEntry, AuditTarget } from './audit-record.ts';

/** The kernel's "no login uid" ((uid_t)-1): a daemon, or a system without pam_loginuid. */
const NO_LOGIN_UID = 4294967295;

export class CommandAudit {
  readonly #state: AuditedState;
  readonly #command: string;
  #target: Record<string, AuditTarget[string]> = {};
  #committed = false;

  constructor(state: AuditedState, command: string) {
    this.#state = state;
    this.#command = command;
  }

  /** What the command acts on, as it learns it; a refusal's record carries what was known. */
  about(target: AuditTarget): void {
    Object.assign(this.#target, target);
  }

  /**
   * Runs `change` (synchronous store work) and appends the `ok` record in one transaction:
   * neither commits without the other. `describe` adds what only the change's result tells.
   */
  commit<T>(change: () => T, describe?: (result: T) => AuditTarget): T {
    const result = this.#state.store.transaction(() => {
      const done = change();
      if (describe !== undefined) this.about(describe(done));
      appendAuditRecord(this.#state, this.#entry('ok'));
      return done;
    });
    this.#committed = true;
    return result;
  }

  /**
   * Appends the `ok` record of a change of files about to be made (relay-cert, crl, backup): it
   * commits before the files are written, so that a kill between the two leaves a record of what
   * may not have happened, never a change without one. When the record cannot be written, the
   * error says `consequence` (what was not done) and the files must then stay as they are.
   */
  commitBefore(describe: () => AuditTarget, consequence: string): void {
    try {
      this.commit(() => undefined, describe);
    } catch (error) {
      throw explainAuditFailure(error, consequence);
    }
  }

  /**
   * Records `error` as the command's refusal, or as its failure once its `ok` record went first
   * (a change of files, recorded before it is made), unless the log itself is what failed. Never
   * throws: the refusal is what the operator must see.
   */
  refuse(error: unknown): void {
    if (error instanceof DmzError && error.code === 'PKI_ERR_AUDIT_WRITE') return;
    const code = error instanceof DmzError ? error.code : 'CLI_ERR_UNEXPECTED';
    const message = error instanceof DmzError ? error.message : 'unexpected error';
    const outcome = this.#committed ? 'failed' : 'refused';
    try {
      this.#state.store.transaction(() =>
        appendAuditRecord(this.#state, this.#entry(outcome, { code, message })),
      );
    } catch {
      // The operator still sees the refusal itself; the log's trouble shows at the next command.
    }
  }

  #entry(outcome: AuditEntry['outcome'], refusal?: { code: string; message: string }): AuditEntry {
    return {
      command: this.#command,
      user: currentActor(),
      target: { ...this.#target },
      outcome,
      ...refusal,
    };
  }
}

/**
 * A record that could not be written, said with what it means for this command: a change made
 * before it (a file written) stays, and the operator must know it did.
 */
export function explainAuditFailure(error: unknown, consequence: string): unknown {
  if (!(error instanceof DmzError) || error.code !== 'PKI_ERR_AUDIT_WRITE') return error;
  return new DmzError(error.code, `${error.message}: ${consequence}`, {
    cause: error,
    ...(error.hint === undefined ? {} : { hint: error.hint }),
  });
}

/** Records as `ok` a command whose change is already made in this state (init). */
export function recordCommand(state: AuditedState, command: string, target: AuditTarget): void {
  const audit = new CommandAudit(state, command);
  audit.about(target);
  audit.commit(() => undefined);
}

/** The process's user and, where Linux keeps it, the user who logged in. */
export function currentActor(): AuditActor {
  const uid = process.getuid?.() ?? -1;
  const loginUid = readLoginUid();
  const name = userName(uid);
  const loginName = loginUid === undefined ? undefined : userName(loginUid);
  return {
    uid,
    ...(name === undefined ? {} : { name }),
    ...(loginUid === undefined ? {} : { loginUid }),
    ...(loginName === undefined ? {} : { loginName }),
  };
}

function readLoginUid(): number | undefined {
  try {
    const value = Number(readFileSync('/proc/self/loginuid', 'utf8').trim());
    return Number.isSafeInteger(value) && value !== NO_LOGIN_UID ? value : undefined;
  } catch {
    return undefined;
  }
}

/** A uid's name: this process's from the system's user database, another's from /etc/passwd. */
function userName(uid: number): string | undefined {
  try {
    if (uid === process.getuid?.()) return userInfo().username;
    const entry = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .map((line) => line.split(':'))
      .find((fields) => fields[2] === String(uid));
    return entry?.[0];
  } catch {
    // A uid without an entry (a container's arbitrary uid): the number is what there is.
    return undefined;
  }
}
