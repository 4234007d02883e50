import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { readRedisCounters } from '../bench/lib/redis-info.ts';

// The scaling benches divide these counters by messages: each must move with what it names.
describe('readRedisCounters', () => {
  const redis = new Redis(inject('redisUrl'));
  afterAll(() => redis.disconnect());

  it('counts PUBLISH and SPUBLISH calls, and their time as the bus', async () => {
    const before = await readRedisCounters(redis);
    // Channels nobody subscribes to: nothing is delivered, the calls are still counted.
    for (let i = 0; i < 5; i++) await redis.spublish(`tooling:redis-info:${i}`, 'x');
    for (let i = 0; i < 3; i++) await redis.publish(`tooling:redis-info:${i}`, 'x');
    const after = await readRedisCounters(redis);
    // Other test files share this Redis and may publish meanwhile: at least ours.
    expect(after.publishCalls - before.publishCalls).toBeGreaterThanOrEqual(8);
    expect(after.busCommandMicros).toBeGreaterThan(before.busCommandMicros);
  });

  it('does not count other commands as publishes', async () => {
    const key = `tooling:redis-info:${process.pid}`;
    await redis.set(key, '1');
    const before = await readRedisCounters(redis);
    const gets = redis.pipeline();
    for (let i = 0; i < 200; i++) gets.get(key);
    await gets.exec();
    const after = await readRedisCounters(redis);
    await redis.del(key);
    expect(after.stateCommandMicros).toBeGreaterThan(before.stateCommandMicros);
    // Publishes by concurrent test files are possible; the 200 GETs must not be among them.
    expect(after.publishCalls - before.publishCalls).toBeLessThan(200);
  });
});
