/** How a caller of `RedisPause.start` goes on: decide in memory, or ask Redis (as the one probe, or as usual). */
export type RedisAttempt = 'local' | 'ask' | 'probe';

/**
 * When a limit stops asking a Redis that failed to answer, and when it asks again. A frozen
 * Redis (SIGSTOP, a stalled host) answers nothing until the client's command timeout (500 ms),
 * which every caller would otherwise wait out one after another. So after a failure, callers
 * decide in memory for `pauseMs` without asking; then one call at a time asks (the probe), the
 * others still deciding in memory, until Redis answers. Shared by the HTTP limit's store and
 * the send budget, so both treat a silent Redis alike. Monotonic clock: a wall clock stepped
 * back must not stretch the pause.
 */
export class RedisPause {
  private failed = false;
  private probing = false;
  private pausedUntil = 0;

  constructor(private readonly pauseMs = 1000) {}

  /** What this call does; an 'ask' or 'probe' is reported back with `answered` or `unanswered`. */
  start(): RedisAttempt {
    if (!this.failed) return 'ask';
    if (this.probing || performance.now() < this.pausedUntil) return 'local';
    this.probing = true;
    return 'probe';
  }

  answered(attempt: RedisAttempt): void {
    if (attempt === 'probe') this.probing = false;
    this.failed = false;
  }

  unanswered(attempt: RedisAttempt): void {
    if (attempt === 'probe') this.probing = false;
    this.failed = true;
    this.pausedUntil = performance.now() + this.pauseMs;
  }
}
