/**
 * A small token bucket per socket: typing is chatty and best-effort, so excess events are
 * dropped silently rather than answered.
 */
export class TypingThrottle {
  private tokens: number;
  private last = Date.now();

  constructor(
    private readonly burst = 5,
    private readonly perSecond = 2,
  ) {
    this.tokens = burst;
  }

  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
