/** `typing-indicator`s a user may cause in one room: a burst, then a steady rate (PROTOCOL §15). */
export const TYPING_BURST = 4;
export const TYPING_PER_SECOND = 2;
/** How often the budgets of users who stopped typing are forgotten. */
const SWEEP_MS = 5_000;
/** (user, room) budgets held at once on one pod, at most; past it the oldest goes. */
const MAX_BUDGETS = 50_000;

interface Budget {
  tokens: number;
  /** When `tokens` was last brought up to date. */
  at: number;
  /** What the last `typing-indicator` this pod sent for this user in this room said. */
  typing: boolean;
}

/**
 * The typing budget of each (user, room) on this pod: what a room's members see is "this user
 * is typing", from whichever device, so a user's sockets share one budget (a user may hold
 * MAX_SOCKETS_PER_USER of them: a budget per socket let one user send the room 32 times as
 * many). A token bucket; excess events are dropped silently (typing is best-effort).
 *
 * Per pod: sharing the budget across pods would cost a Redis round trip per keystroke event.
 * A user's sockets spread over k pods get k budgets, at most.
 *
 * The `isTyping: false` that ends a `true` (the last indicator this pod sent for the user in
 * the room said `true`) is never dropped nor held back, but it is charged: it takes a token
 * even when none is left (the bucket goes into debt, at most by one, since only one `false`
 * can follow each admitted `true`), so the next `true` waits for it. Dropping it instead could
 * leave "typing…" on the others' screens for good: PROTOCOL §5 makes the client send `false`
 * once (after 3 s without input) and gives listeners no expiry to rely on (the web page hides
 * an indicator after 6 s, but that is one client's choice, not the protocol's). Holding it back
 * until a token is free would need a timer per throttled user and a state kept after they stop.
 * With the debt, a user who alternates `true` / `false` as fast as possible still gets no more
 * than TYPING_PER_SECOND indicators a second after the burst: every `false` let through is paid
 * for by the wait before the next `true`. A `false` when the last indicator sent was a `false`
 * ends nothing and is charged like a `true`.
 *
 * Memory, the discipline of issue 17 (connection.ts): the budgets are per (user, room), never
 * per socket, and only for users who typed in the last few seconds; a socket holds a Set of
 * its rooms only while its last word there is `true` (typing.handler.ts). A budget whose
 * bucket is full again (at most (burst + 1) / rate = 2.5 s after its last event) is forgotten
 * by a sweep every SWEEP_MS, which runs only while there are budgets (one timer per pod); the
 * map never holds more than MAX_BUDGETS. Forgetting a budget is safe even when its last word
 * was `true`: a new budget starts full, so the `false` that comes later passes all the same.
 */
export class TypingThrottle {
  private readonly budgets = new Map<string, Budget>();
  private sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly burst = TYPING_BURST,
    private readonly perSecond = TYPING_PER_SECOND,
    private readonly now: () => number = Date.now,
    private readonly maxBudgets = MAX_BUDGETS,
  ) {}

  /** Whether the room hears this `typing` of the user now; charges the user's budget if so. */
  admit(userId: string, roomId: string, isTyping: boolean): boolean {
    const now = this.now();
    const key = `${userId} ${roomId}`;
    let budget = this.budgets.get(key);
    if (budget) {
      budget.tokens = this.tokensAt(budget, now);
      budget.at = now;
    } else {
      budget = { tokens: this.burst, at: now, typing: false };
      this.add(key, budget);
    }
    const endsTyping = !isTyping && budget.typing;
    if (budget.tokens < 1 && !endsTyping) return false;
    budget.tokens -= 1;
    budget.typing = isTyping;
    return true;
  }

  /** Budgets held (tests). */
  get size(): number {
    return this.budgets.size;
  }

  /** Forgets the budgets whose bucket is full again: their users stopped typing a while ago. */
  sweep(): void {
    const now = this.now();
    for (const [key, budget] of this.budgets) if (this.tokensAt(budget, now) >= this.burst) this.budgets.delete(key);
    if (this.budgets.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private tokensAt(budget: Budget, now: number): number {
    return Math.min(this.burst, budget.tokens + (Math.max(0, now - budget.at) / 1000) * this.perSecond);
  }

  private add(key: string, budget: Budget): void {
    // Full (the sweep keeps it to the users of the last few seconds): the oldest goes, without a
    // scan per event. Its user gets a fresh budget: a bounded leak, never a stuck indicator.
    if (this.budgets.size >= this.maxBudgets) this.budgets.delete(this.budgets.keys().next().value!);
    this.budgets.set(key, budget);
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweeper.unref();
    }
  }
}
