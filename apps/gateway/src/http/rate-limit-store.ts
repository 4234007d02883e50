import type { FastifyRateLimitStore } from '@fastify/rate-limit';
import type { FastifyBaseLogger } from 'fastify';
import type { StateClient } from '@chat/bus';
import { throttledWarning } from '@chat/runtime';
import { RedisPause } from '../lib/redis-pause.ts';

/** A window's count and how long it has left, as @fastify/rate-limit reads a store's answer. */
interface WindowCount {
  current: number;
  ttl: number;
}

type WindowCommands = StateClient & {
  httpRateIncr(key: string, windowMs: number): Promise<[number, number]>;
};

/**
 * One fixed window per key: the count, and the window's time left in ms. The same INCR and
 * PEXPIRE as @fastify/rate-limit's own Redis store (without its back-off options, which this
 * project does not use), so the keys keep their meaning.
 */
const INCR_SCRIPT = `
local current = redis.call('INCR', KEYS[1])
local ttl = tonumber(ARGV[1])
if current == 1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  ttl = redis.call('PTTL', KEYS[1])
end
return {current, ttl}`;

/** Keys a pod counts by itself while Redis does not answer, at most (the least recently used go first). */
const LOCAL_KEYS = 20_000;


/**
 * The same windows in this process's memory. Not rate-limiter-flexible's RateLimiterMemory, which
 * the per-user limits fall back to: keys here are also client addresses, which a client can vary
 * at will, and that one keeps every key (and a timer) for its whole window; this one holds at
 * most LOCAL_KEYS.
 */
class LocalWindows {
  private readonly windows = new Map<string, { count: number; endsAt: number }>();

  incr(key: string, windowMs: number): WindowCount {
    const now = Date.now();
    let window = this.windows.get(key);
    // Taken out and put back: a Map iterates in insertion order, so its first key is the least
    // recently used, the one dropped when the map is full.
    this.windows.delete(key);
    if (!window || window.endsAt <= now) {
      if (this.windows.size >= LOCAL_KEYS) this.windows.delete(this.windows.keys().next().value!);
      window = { count: 0, endsAt: now + windowMs };
    }
    this.windows.set(key, window);
    window.count += 1;
    return { current: window.count, ttl: window.endsAt - now };
  }
}

/**
 * The HTTP rate limit's store: the count in Redis, shared by every pod; while Redis does not
 * answer, each pod counts in its own memory, so the budget holds per pod instead of not at all
 * (the send and handshake budgets fall back the same way).
 */
export function redisStoreWithLocalFallback(redis: StateClient, keyPrefix: string, logger: FastifyBaseLogger): new () => FastifyRateLimitStore {
  const commands = redis as WindowCommands;
  if (typeof commands.httpRateIncr !== 'function') {
    redis.defineCommand('httpRateIncr', { numberOfKeys: 1, lua: INCR_SCRIPT });
  }
  const local = new LocalWindows();
  const warnLocal = throttledWarning(logger, 'http rate limit: Redis did not answer, this pod counts by itself', 'requests');
  /** Redis failed and has not answered since: requests count in memory, one at a time asks again. */
  const pause = new RedisPause();
  return class RedisWithLocalFallback implements FastifyRateLimitStore {
    incr(key: string, callback: (error: Error | null, result?: WindowCount) => void, timeWindow: number): void {
      const attempt = pause.start();
      if (attempt === 'local') {
        callback(null, local.incr(key, timeWindow));
        return;
      }
      commands.httpRateIncr(keyPrefix + key, timeWindow).then(
        ([current, ttl]) => {
          pause.answered(attempt);
          callback(null, { current, ttl });
        },
        (error: unknown) => {
          pause.unanswered(attempt);
          warnLocal(error);
          callback(null, local.incr(key, timeWindow));
        },
      );
    }

    /** No route has limits of its own: every route shares the global store. */
    child(): FastifyRateLimitStore {
      return this;
    }
  };
}
