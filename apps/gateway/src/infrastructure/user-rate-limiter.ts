import type { StateClient } from '@chat/bus';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '@chat/protocol';

export interface UserRateLimiter {
  /**
   * Takes one action from the user's budget, or throws the limiter's refusal with
   * `retryAfterMs`. Resolves with what is left of the budget and when it is whole again.
   */
  consume(userId: string): Promise<{ remaining: number; retryAfterMs: number }>;
  /** Gives one back (a retry that stored nothing new should not cost the user). */
  refund(userId: string): Promise<void>;
}

/**
 * N actions per minute per user, counted in Redis so every pod shares one budget. When Redis
 * cannot answer, an in-memory limiter with the same budget stands in (per pod, so at worst
 * N × pods while Redis is away) rather than refusing every action.
 */
export function createUserRateLimiter(options: {
  redis: StateClient;
  keyPrefix: string;
  perMinute: number;
  /** The error a refused action answers: RATE_LIMITED for sends (PROTOCOL §4), TOO_MANY_REQUESTS [ext] otherwise. */
  refusal: 'RATE_LIMITED' | 'TOO_MANY_REQUESTS';
}): UserRateLimiter {
  const limiter = new RateLimiterRedis({
    storeClient: options.redis,
    keyPrefix: options.keyPrefix,
    points: options.perMinute,
    duration: 60,
    insuranceLimiter: new RateLimiterMemory({ points: options.perMinute, duration: 60 }),
  });
  return {
    async consume(userId) {
      try {
        const taken = await limiter.consume(userId, 1);
        return { remaining: taken.remainingPoints, retryAfterMs: taken.msBeforeNext };
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) {
          throw new AppError(options.refusal, { retryAfterMs: rejection.msBeforeNext });
        }
        throw rejection;
      }
    },
    async refund(userId) {
      await limiter.reward(userId, 1).catch(() => undefined);
    },
  };
}
