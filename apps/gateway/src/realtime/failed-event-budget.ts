import { AppError, type ErrorCode } from '@chat/protocol';
import type { UserRateLimiter } from '../infrastructure/user-rate-limiter.ts';

/**
 * The refusals that cost the pod a database lookup (a room that is not cached, a membership
 * the socket does not mirror): a client sending events to rooms that do not exist, or are not
 * theirs, would otherwise make the pod query Postgres for free (issue 18, point 5).
 */
const LOOKUP_REFUSALS: ReadonlySet<ErrorCode> = new Set(['ROOM_NOT_FOUND', 'ROOM_EXPIRED', 'NOT_A_MEMBER', 'NOT_A_MEMBER_LEAVE']);

/** Users blocked at once on one pod, at most; past it the lapsed, then the oldest, are forgotten. */
const BLOCKED_USERS = 10_000;

/**
 * [ext] FAILED_EVENT_LIMIT_PER_MINUTE: each socket event answered with one of those refusals
 * costs one of the user's failures, counted in Redis for all pods. Once a failure leaves none,
 * this pod refuses the user's events with TOO_MANY_REQUESTS (and `retryAfterMs`) before they
 * are handled, until the budget's minute is over: without a Redis round trip, so the hot path
 * pays nothing. Another pod learns of it at the user's next failure there.
 */
export function createFailedEventBudget(limiter: UserRateLimiter) {
  const blockedUntil = new Map<string, number>();

  function block(userId: string, retryAfterMs: number) {
    if (blockedUntil.size >= BLOCKED_USERS) {
      const now = Date.now();
      for (const [user, until] of blockedUntil) if (until <= now) blockedUntil.delete(user);
      if (blockedUntil.size >= BLOCKED_USERS) blockedUntil.delete(blockedUntil.keys().next().value!);
    }
    blockedUntil.set(userId, Date.now() + retryAfterMs);
  }

  return {
    /** The refusal the user's events get now, or null. */
    refusal(userId: string): AppError | null {
      const until = blockedUntil.get(userId);
      if (until === undefined) return null;
      const retryAfterMs = until - Date.now();
      if (retryAfterMs <= 0) {
        blockedUntil.delete(userId);
        return null;
      }
      return new AppError('TOO_MANY_REQUESTS', { retryAfterMs });
    },

    /** Charges an event's failure, when it is one that costs a lookup. Never rejects. */
    async charge(userId: string, code: ErrorCode): Promise<void> {
      if (!LOOKUP_REFUSALS.has(code)) return;
      try {
        const { remaining, retryAfterMs } = await limiter.consume(userId);
        if (remaining <= 0) block(userId, retryAfterMs);
      } catch (error) {
        const retryAfterMs = error instanceof AppError ? error.details?.retryAfterMs : undefined;
        if (typeof retryAfterMs === 'number') block(userId, retryAfterMs);
      }
    },
  };
}

export type FailedEventBudget = ReturnType<typeof createFailedEventBudget>;
