import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { AppError } from '@chat/protocol';
import { freePort, monitorRedis, sleep, startPrivateRedis, uniquePrefix, type RedisMonitor } from '@chat/testing';
import { LeasedRateLimiter, isMemoryUnit } from '../../apps/gateway/src/infrastructure/leased-rate-limiter.ts';

/**
 * The send budget leased from Redis a few units at a time, with two limiters on one Redis
 * standing for two pods: never more than the limit in a window, a refusal always carries
 * retryAfterMs, unspent units go back, and a user who keeps sending costs fewer Redis calls
 * than sends.
 */
const LIMIT = 30;
let redis: Redis;
let monitor: RedisMonitor | null = null;
const limiters: LeasedRateLimiter[] = [];

beforeAll(() => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await Promise.all(limiters.map((limiter) => limiter.close()));
  monitor?.close();
  redis.disconnect();
});

/** Two pods' limiters on one key prefix. */
function pods(options: { leaseMs?: number; windowMs?: number; perMinute?: number } = {}) {
  const keyPrefix = uniquePrefix('lease');
  const make = () => {
    const limiter = new LeasedRateLimiter({ redis, keyPrefix, perMinute: options.perMinute ?? LIMIT, leaseMs: options.leaseMs ?? 2000, windowMs: options.windowMs });
    limiters.push(limiter);
    return limiter;
  };
  return { a: make(), b: make(), keyPrefix };
}

/** Resolves to 'ok' or the refusal's retryAfterMs. */
async function attempt(limiter: LeasedRateLimiter, userId: string): Promise<'ok' | number> {
  try {
    await limiter.consume(userId);
    return 'ok';
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('RATE_LIMITED');
    const retryAfterMs = (error as AppError).details?.retryAfterMs;
    expect(typeof retryAfterMs).toBe('number');
    return retryAfterMs as number;
  }
}

describe('LeasedRateLimiter', () => {
  it('lets exactly the limit through when one user sends as fast as it can from two pods at once', async () => {
    const { a, b } = pods();
    const user = randomUUID();
    // Rounds of concurrent sends on both pods: each pod leases ahead while the other spends.
    const results: ('ok' | number)[] = [];
    for (let round = 0; round < 10; round++) {
      results.push(...(await Promise.all(Array.from({ length: 8 }, (_, i) => attempt(i % 2 ? b : a, user)))));
    }
    expect(results.filter((r) => r === 'ok')).toHaveLength(LIMIT);
    for (const refusal of results.filter((r): r is number => r !== 'ok')) {
      expect(refusal).toBeGreaterThan(0);
      expect(refusal).toBeLessThanOrEqual(60_000);
    }
  });

  it('lets exactly the limit through for sends alternating between the pods one at a time', async () => {
    const { a, b } = pods();
    const user = randomUUID();
    const results: ('ok' | number)[] = [];
    for (let index = 0; index < LIMIT + 5; index++) results.push(await attempt(index % 2 ? b : a, user));
    expect(results.slice(0, LIMIT)).toEqual(Array.from({ length: LIMIT }, () => 'ok'));
    expect(results.slice(LIMIT).every((r) => r !== 'ok')).toBe(true);
  });

  it('takes units this pod holds synchronously, and still lets exactly the limit through across pods', async () => {
    const { a, b } = pods();
    const user = randomUUID();
    // Nothing held yet: no unit, and no call to Redis to find that out.
    expect(a.tryConsumeLeased(user)).toBeNull();
    // As a send does: a unit held by the pod, else the lease (which may ask Redis).
    let held = 0;
    const send = async (limiter: LeasedRateLimiter): Promise<'ok' | number> => {
      if (limiter.tryConsumeLeased(user) !== null) {
        held += 1;
        return 'ok';
      }
      return attempt(limiter, user);
    };
    const results: ('ok' | number)[] = [];
    for (let round = 0; round < 10; round++) {
      results.push(...(await Promise.all(Array.from({ length: 8 }, (_, i) => send(i % 2 ? b : a)))));
    }
    expect(results.filter((r) => r === 'ok')).toHaveLength(LIMIT);
    // A user sending this fast is served from units leased ahead.
    expect(held).toBeGreaterThan(0);
    expect(a.tryConsumeLeased(user) ?? b.tryConsumeLeased(user)).toBeNull();
  });

  it('keeps each user to their own budget', async () => {
    const { a, b } = pods();
    const [first, second] = [randomUUID(), randomUUID()];
    for (let index = 0; index < LIMIT; index++) expect(await attempt(a, first)).toBe('ok');
    expect(await attempt(b, first)).not.toBe('ok');
    for (let index = 0; index < LIMIT; index++) expect(await attempt(index % 2 ? a : b, second)).toBe('ok');
  });

  it('costs fewer Redis calls than sends for a user who keeps sending', async () => {
    const { a, keyPrefix } = pods({ perMinute: 1_000_000 });
    const user = randomUUID();
    let calls = 0;
    monitor = await monitorRedis(inject('redisUrl'), (args) => {
      if (args.some((arg) => arg.startsWith(`${keyPrefix}:`)) && (args[0] === 'evalsha' || args[0] === 'eval')) calls++;
    });
    await sleep(100);
    for (let index = 0; index < 60; index++) expect(await attempt(a, user)).toBe('ok');
    await sleep(200);
    monitor.close();
    monitor = null;
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThanOrEqual(20);
  });

  it('gives back units one pod leased ahead and did not spend, so the other pod can use them', async () => {
    const { a, b } = pods({ leaseMs: 200 });
    const user = randomUUID();
    // Quick sends on A: it leases spare units ahead.
    for (let index = 0; index < 10; index++) expect(await attempt(a, user)).toBe('ok');
    // Once its lease is over, A gives the spare ones back and B gets the rest of the budget.
    await sleep(600);
    const onB: ('ok' | number)[] = [];
    for (let index = 0; index < LIMIT - 10 + 3; index++) onB.push(await attempt(b, user));
    expect(onB.filter((r) => r === 'ok')).toHaveLength(LIMIT - 10);
  });

  it('a refusal caused by units held on another pod says to retry when they come back, and a retry then is accepted', async () => {
    const { a, b } = pods({ leaseMs: 1000 });
    const user = randomUUID();
    // A leases ahead while the user sends quickly, then the user moves to B and uses up the rest.
    for (let index = 0; index < 12; index++) expect(await attempt(a, user)).toBe('ok');
    let refusal: 'ok' | number = 'ok';
    let okOnB = 0;
    for (let index = 0; index < LIMIT && refusal === 'ok'; index++) {
      refusal = await attempt(b, user);
      if (refusal === 'ok') okOnB++;
    }
    expect(refusal).not.toBe('ok');
    const refusedAt = Date.now();
    // A still holds some: B got fewer than the rest of the budget.
    expect(okOnB).toBeLessThan(LIMIT - 12);
    // Held units, not the window's end: the wait is at most the lease and A's sweep after it.
    expect(refusal).toBeLessThanOrEqual(1000 + 250);
    const retryAt = refusedAt + (refusal as number);
    // Clearly before that, A has not given them back yet.
    if ((refusal as number) > 400) {
      await sleep(retryAt - 300 - Date.now());
      expect(await attempt(b, user)).not.toBe('ok');
    }
    // Once they are back, B gets them.
    await sleep(retryAt + 150 - Date.now());
    expect(await attempt(b, user)).toBe('ok');
  });

  it('a refusal on the pod that spent the whole budget says when the window ends, not when its own lease does', async () => {
    const WINDOW = 3000;
    const { a } = pods({ windowMs: WINDOW, leaseMs: 1000 });
    const user = randomUUID();
    const started = Date.now();
    // Quick sends: the pod leases spare units ahead, and spends them all.
    for (let index = 0; index < LIMIT; index++) expect(await attempt(a, user)).toBe('ok');
    const refusal = await attempt(a, user);
    const refusedAt = Date.now();
    expect(refusal).not.toBe('ok');
    // The window started with the first send: nothing comes back before it ends.
    expect(refusal).toBeGreaterThan(WINDOW - (refusedAt - started) - 100);
    expect(refusal).toBeLessThanOrEqual(WINDOW);
    const retryAt = refusedAt + (refusal as number);
    // Clearly before it (past the pod's lease): refused, and told the same moment.
    await sleep(retryAt - 400 - Date.now());
    const early = await attempt(a, user);
    expect(early).not.toBe('ok');
    expect(Math.abs(Date.now() + (early as number) - retryAt)).toBeLessThan(150);
    // Just after it: a new window.
    await sleep(retryAt + 150 - Date.now());
    expect(await attempt(a, user)).toBe('ok');
  });

  it('a pod asking again while it still holds units (its lease just over) takes only what they do not cover', async () => {
    const { keyPrefix } = pods();
    const user = randomUUID();
    const key = `${keyPrefix}:${user}`;
    // The lease script as a pod calls it: (key, limit, window, need, spare, hold, pod, held, heldWindow).
    const lease = (redis as unknown as { chatRateLease(...args: (string | number)[]): Promise<[number, number, string, number]> }).chatRateLease.bind(redis);
    const [first, , windowId] = await lease(key, 5, 60_000, 1, 2, 1000, 'pod-a', 0, '');
    // One send, and spare units for the next ones: the pod keeps what it did not spend.
    expect(first).toBeGreaterThan(1);
    const kept = first - 1;
    expect(await redis.hget(key, 'n')).toBe(String(first));
    // The pod's lease ran out before it gave them back: a send asks with them as `held`. They
    // serve it; the window gives nothing more, and keeps the rest for the user's other pods.
    const [granted, , sameWindow, wait] = await lease(key, 5, 60_000, 1, 0, 1000, 'pod-a', kept, windowId);
    expect(sameWindow).toBe(windowId);
    expect(granted).toBe(0);
    expect(wait).toBe(0);
    expect(await redis.hget(key, 'n')).toBe(String(first));
    const [onB] = await lease(key, 5, 60_000, 5 - first, 0, 1000, 'pod-b', 0, '');
    expect(onB).toBe(5 - first);
  });

  it('units held by a pod that dies are lost until the window ends, never spent twice (PROTOCOL §4)', async () => {
    const WINDOW = 4000;
    const keyPrefix = uniquePrefix('lease');
    // Pod A has a connection of its own: closing it is A dying (SIGKILL): nothing it held comes back.
    const own = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 0 });
    await own.ping();
    const a = new LeasedRateLimiter({ redis: own, keyPrefix, perMinute: LIMIT, leaseMs: 500, windowMs: WINDOW });
    const b = new LeasedRateLimiter({ redis, keyPrefix, perMinute: LIMIT, leaseMs: 500, windowMs: WINDOW });
    limiters.push(a, b);
    const user = randomUUID();
    // Quick sends on A: it leases spare units ahead.
    for (let index = 0; index < 12; index++) expect(await attempt(a, user)).toBe('ok');
    own.disconnect();
    const results: ('ok' | number)[] = [];
    for (let index = 0; index < LIMIT; index++) results.push(await attempt(b, user));
    const okOnB = results.filter((r) => r === 'ok').length;
    // A held some: B got fewer than the rest, and the refusal says when they were due back.
    expect(okOnB).toBeLessThan(LIMIT - 12);
    const refusal = results.find((r): r is number => r !== 'ok')!;
    expect(refusal).toBeLessThanOrEqual(500 + 125);
    // Due back, but A is gone: the retry is refused, now until the window's end.
    await sleep(refusal + 50);
    const retry = await attempt(b, user);
    expect(retry).not.toBe('ok');
    expect(retry).toBeGreaterThan(refusal);
    expect(retry).toBeLessThanOrEqual(WINDOW);
    // And then a whole new budget.
    await sleep((retry as number) + 100);
    expect(await attempt(b, user)).toBe('ok');
  });

  it('refund gives a unit back to the window', async () => {
    const { a, b } = pods({ leaseMs: 0 });
    const user = randomUUID();
    let unit = '';
    for (let index = 0; index < LIMIT; index++) unit = await a.consume(user);
    expect(await attempt(b, user)).not.toBe('ok');
    await a.refund(user, unit);
    expect(await attempt(b, user)).toBe('ok');
    expect(await attempt(b, user)).not.toBe('ok');
  });

  it('a refund of a unit taken in a window that has ended adds nothing to the next one', async () => {
    // A long lease: the pod still holds units of the new window when the refund comes.
    const { a, b } = pods({ windowMs: 1000, leaseMs: 5000, perMinute: 5 });
    const user = randomUUID();
    // A send takes a unit; its write outlives the window (a duplicate found, a failed write).
    const old = await a.consume(user);
    await sleep(1200);
    // The next window: its whole budget spent, from the pod that took the old unit.
    for (let index = 0; index < 5; index++) expect(await attempt(a, user)).toBe('ok');
    await a.refund(user, old);
    expect(await attempt(a, user)).not.toBe('ok');
    expect(await attempt(b, user)).not.toBe('ok');
  });

  it('a refund of a unit the pod gave back already with its lease goes to Redis, once', async () => {
    const { a, b } = pods({ leaseMs: 200, perMinute: 5 });
    const user = randomUUID();
    const units: string[] = [];
    for (let index = 0; index < 5; index++) units.push(await a.consume(user));
    expect(await attempt(b, user)).not.toBe('ok');
    // Past A's lease (and its sweep): the refund cannot go into a lease A no longer holds.
    await sleep(500);
    await a.refund(user, units[0]!);
    expect(await attempt(b, user)).toBe('ok');
    expect(await attempt(b, user)).not.toBe('ok');
  });

  it('while Redis does not answer, the in-memory budget decides, and a refund gives its unit back there', async () => {
    // Nothing listens on that port: every call fails at once, as with a Redis that is down.
    const down = new Redis(`redis://127.0.0.1:${await freePort()}`, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    const limiter = new LeasedRateLimiter({ redis: down, keyPrefix: uniquePrefix('lease'), perMinute: 5 });
    limiters.push(limiter);
    const user = randomUUID();
    const units: string[] = [];
    for (let index = 0; index < 5; index++) units.push(await limiter.consume(user));
    expect(units.every(isMemoryUnit)).toBe(true);
    expect(await attempt(limiter, user)).not.toBe('ok');
    // A duplicate found, a failed write: the send stored nothing and costs nothing.
    await limiter.refund(user, units[0]!);
    expect(await attempt(limiter, user)).toBe('ok');
    expect(await attempt(limiter, user)).not.toBe('ok');
    down.disconnect();
  });

  it('units the in-memory budget gave while Redis was away count in Redis once it answers again, on every pod', async () => {
    const keyPrefix = uniquePrefix('lease');
    const flaky = new Redis(inject('redisUrl'), { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    await flaky.connect();
    const a = new LeasedRateLimiter({ redis: flaky, keyPrefix, perMinute: 5 });
    const b = new LeasedRateLimiter({ redis, keyPrefix, perMinute: 5 });
    limiters.push(a, b);
    const user = randomUUID();
    expect(await attempt(a, user)).toBe('ok');
    // A's Redis goes away (down, or its data lost: A cannot tell): A's memory gives the rest.
    const closed = new Promise((resolve) => flaky.once('end', resolve));
    flaky.disconnect();
    await closed;
    const meanwhile: ('ok' | number)[] = [];
    for (let index = 0; index < 6; index++) meanwhile.push(await attempt(a, user));
    expect(meanwhile.filter((r) => r === 'ok').length).toBeGreaterThan(0);
    await flaky.connect();
    // A pod asks Redis again a second after it last failed to answer (MEMORY_ONLY_MS).
    await sleep(1_100);
    // Back: what the user sent meanwhile is counted, so no pod starts them a fresh budget.
    expect(await attempt(a, user)).not.toBe('ok');
    expect(await attempt(b, user)).not.toBe('ok');
    // The window holds the one send Redis saw and the ones A's memory gave, up to the limit.
    expect(Number(await redis.hget(`${keyPrefix}:${user}`, 'n'))).toBe(5);
    flaky.disconnect();
  });

  it('a frozen Redis is waited for by one send, not by every user\'s: the in-memory budget decides for a second, then one send asks again', async () => {
    const privateRedis = await startPrivateRedis();
    // As the gateway's state client: a command unanswered after its timeout fails (redis-clients.ts).
    const frozenClient = new Redis(privateRedis.url, { commandTimeout: 300, maxRetriesPerRequest: 0 });
    try {
      const limiter = new LeasedRateLimiter({ redis: frozenClient, keyPrefix: uniquePrefix('lease'), perMinute: 5 });
      limiters.push(limiter);
      expect(await attempt(limiter, randomUUID())).toBe('ok'); // the script is loaded
      const leaseCalls = async () => {
        const stats = await frozenClient.info('commandstats');
        return Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0);
      };
      const before = await leaseCalls();
      privateRedis.freeze(true);
      // Ten users send one after another: the first waits out the command timeout, the others
      // are decided in memory at once (without the pause, each waited 300 ms and sent a call).
      const users = Array.from({ length: 10 }, () => randomUUID());
      const units: string[] = [];
      for (const user of users) units.push(await limiter.consume(user));
      expect(units.every(isMemoryUnit)).toBe(true);
      privateRedis.freeze(false);
      await sleep(100);
      // The calls Redis received while frozen (it runs them once thawed): the first send's alone.
      // (INFO itself is no EVALSHA; the count is read on the same connection, after them.)
      expect((await leaseCalls()) - before).toBe(1);
      // A second on, one send asks Redis again, and once it answers sends are counted there again.
      await sleep(1_100);
      const back = randomUUID();
      expect(isMemoryUnit(await limiter.consume(back))).toBe(false);
    } finally {
      frozenClient.disconnect();
      await privateRedis.stop();
    }
  });

  it("a pod whose wall clock is stepped back (NTP) spends no unit past its window: leases run on a monotonic clock", async () => {
    const { a, b, keyPrefix } = pods({ windowMs: 1000, leaseMs: 5000 });
    const user = randomUUID();
    // Quick sends: A leases spare units ahead, and holds some.
    for (let index = 0; index < 7; index++) expect(await attempt(a, user)).toBe('ok');
    expect(Number(await redis.hget(`${keyPrefix}:${user}`, 'n'))).toBeGreaterThan(7);
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() - 3_600_000 });
    try {
      await sleep(1200);
      // The window is over in Redis: A's spare units went with it. Spent now, they would be
      // counted nowhere: B takes the whole new budget, A must get nothing without asking.
      for (let index = 0; index < LIMIT; index++) expect(await attempt(b, user)).toBe('ok');
      expect(a.tryConsumeLeased(user)).toBeNull();
      expect(await attempt(a, user)).not.toBe('ok');
    } finally {
      vi.useRealTimers();
    }
  });

  it('starts a new budget when the window ends, and units of the old window are not spent in the new one', async () => {
    const { a, b } = pods({ windowMs: 1500, leaseMs: 5000 });
    const user = randomUUID();
    for (let index = 0; index < 12; index++) expect(await attempt(a, user)).toBe('ok');
    await sleep(1700);
    // A new window: the full budget again, whichever pod asks, and A's spare units are void.
    const results: ('ok' | number)[] = [];
    for (let index = 0; index < LIMIT + 4; index++) results.push(await attempt(index % 2 ? a : b, user));
    expect(results.filter((r) => r === 'ok')).toHaveLength(LIMIT);
  });
});
