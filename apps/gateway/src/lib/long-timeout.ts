/** The longest delay setTimeout holds (a signed 32-bit count of ms, ~24.8 days); past it, it fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * `setTimeout` for any delay: one further away than a timer can hold is reached in steps of at
 * most `maxStepMs`, each re-armed against the clock, so it never fires early (or, as a
 * bounded-away timer would, not at all). The timers are unref'd: they keep no process alive.
 * Returns what cancels it.
 */
export function setLongTimeout(callback: () => void, delayMs: number, options: { maxStepMs?: number } = {}): () => void {
  const maxStepMs = Math.min(options.maxStepMs ?? MAX_TIMER_MS, MAX_TIMER_MS);
  const dueAt = Date.now() + Math.max(0, delayMs);
  let timer: NodeJS.Timeout;
  const arm = () => {
    const left = dueAt - Date.now();
    if (left <= 0) {
      callback();
      return;
    }
    timer = setTimeout(arm, Math.min(left, maxStepMs));
    timer.unref();
  };
  timer = setTimeout(arm, Math.min(Math.max(0, delayMs), maxStepMs));
  timer.unref();
  return () => clearTimeout(timer);
}
