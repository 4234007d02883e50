/**
 * Fault injection for the fault suite (test/faults). Off unless FAULT_CRASH_AFTER_COMMIT is set;
 * production never sets it. The hook runs in the send path after the group commit resolved and
 * before the sender is acknowledged or anything is broadcast: the one moment where a crash
 * leaves a committed message that nobody was told about, which `clientMessageId` retries and
 * the `after` catch-up must cover.
 */
export type FaultCrashAfterCommit =
  /** Crash at the Nth committed message of this process. */
  | { kind: 'nth'; n: number }
  /** Crash after each committed message with this probability. */
  | { kind: 'probability'; p: number };

/** `"25"` → the 25th message; `"0.02"` → 2 % of messages; empty → off. */
export function parseFaultCrashAfterCommit(value: string | undefined): FaultCrashAfterCommit | null {
  if (value === undefined || value.trim() === '') return null;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) throw new Error('FAULT_CRASH_AFTER_COMMIT must be a positive number');
  if (number < 1) return { kind: 'probability', p: number };
  if (!Number.isInteger(number)) throw new Error('FAULT_CRASH_AFTER_COMMIT must be an integer ≥ 1 or a probability < 1');
  return { kind: 'nth', n: number };
}

/**
 * The hook, or undefined when no fault is configured (the send path then pays nothing). It
 * kills its own process with SIGKILL: no shutdown hook, no flush, no ack, as a real crash.
 */
export function createAfterCommitHook(fault: FaultCrashAfterCommit | null): (() => void) | undefined {
  if (!fault) return undefined;
  let committed = 0;
  return () => {
    committed += 1;
    const crash = fault.kind === 'nth' ? committed >= fault.n : Math.random() < fault.p;
    if (crash) {
      process.stderr.write(`fault-hooks: crashing after commit #${committed}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
  };
}
