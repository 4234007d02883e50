import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { monitorRedis, sleep, uniquePrefix } from '@chat/testing';
import { createSocketLeases, type SocketLeases } from '../../apps/gateway/src/infrastructure/socket-leases.ts';

/**
 * The socket places (MAX_SOCKETS_PER_USER [ext]) on a real Redis, at a pod's size. A pod keeps
 * its places alive by renewing one key of its own, whatever its number of sockets: renewing
 * every socket's lease was one script per connected user every 10 s (7 µs of Redis each: 70% of
 * the state Redis's core at a million users).
 */
describe('socket places: liveness per pod', () => {
  let redis: Redis;
  const started: SocketLeases[] = [];
  const logger = pino({ level: 'silent' });

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
  });

  afterAll(async () => {
    for (const leases of started) leases.stop();
    redis.disconnect();
  });

  function pod(prefix: string, options: { places: number; leaseMs: number }) {
    const leases = createSocketLeases({
      redis,
      prefix,
      places: options.places,
      leaseMs: options.leaseMs,
      logger,
      podName: 'test-pod',
    });
    started.push(leases);
    return leases;
  }

  it('2,000 users on a pod: each renewal is one command, none per user', async () => {
    const prefix = uniquePrefix('lease-scale');
    const sockets = Array.from({ length: 2000 }, (_, i) => ({ userId: `user-${i}`, socketId: `socket-${i}` }));
    const leases = pod(prefix, { places: 4, leaseMs: 900 });
    leases.start();
    for (const { userId, socketId } of sockets) expect(await leases.reserve(userId, socketId)).toBe('reserved');

    const seen: string[][] = [];
    const monitor = await monitorRedis(inject('redisUrl'), (args) => {
      if (args.some((arg) => arg.startsWith(`${prefix}:`))) seen.push(args);
    });
    const isRenewal = (args: string[]) => args[0]?.toLowerCase() === 'set';
    try {
      // Three renewals or more (one every leaseMs / 3); waited for, not timed: on a loaded
      // machine the pod's timer may run late, which is not what this test is about.
      for (const deadline = Date.now() + 10_000; seen.filter(isRenewal).length < 3 && Date.now() < deadline; ) await sleep(50);
    } finally {
      monitor.close();
    }
    const renewals = seen.filter(isRenewal);
    expect(renewals.length).toBeGreaterThanOrEqual(3);
    expect(renewals.every((args) => args[1]?.startsWith(`${prefix}:sockets-pod:test-pod:`))).toBe(true);
    expect(seen.length).toBe(renewals.length);
    const keys = await redis.keys(`${prefix}:*`);
    for (let at = 0; at < keys.length; at += 500) await redis.del(...keys.slice(at, at + 500));
  });

  it('the places of a pod that stopped renewing stop counting within its lease; a live pod keeps them', async () => {
    const prefix = uniquePrefix('lease-dead');
    const dying = pod(prefix, { places: 2, leaseMs: 600 });
    const living = pod(prefix, { places: 2, leaseMs: 600 });
    dying.start();
    living.start();
    expect(await dying.reserve('alice', 's1')).toBe('reserved');
    expect(await dying.reserve('alice', 's2')).toBe('reserved');
    expect(await living.reserve('alice', 's3')).toBe('full');
    await sleep(700); // renewed twice since: still alive
    expect(await living.reserve('alice', 's3')).toBe('full');

    dying.stop();
    await sleep(800);
    expect(await living.reserve('alice', 's3')).toBe('reserved');
    expect(await living.reserve('alice', 's4')).toBe('reserved');
    expect(await living.reserve('alice', 's5')).toBe('full');
    // A released place is free at once.
    await living.release('alice', 's4');
    expect(await living.reserve('alice', 's5')).toBe('reserved');
    await redis.del(`${prefix}:sockets:{alice}`);
  });

  it('during a rolling deploy, a place written by the previous version counts until its own lease ends', async () => {
    const prefix = uniquePrefix('lease-compat');
    const leases = pod(prefix, { places: 1, leaseMs: 600 });
    leases.start();
    const key = `${prefix}:sockets:{bob}`;
    const [seconds] = await redis.time();
    await redis.zadd(key, Number(seconds) * 1000 + 60_000, 'old-socket');
    expect(await leases.reserve('bob', 'new-socket')).toBe('full');
    await redis.zadd(key, Number(seconds) * 1000 - 1000, 'old-socket');
    expect(await leases.reserve('bob', 'new-socket')).toBe('reserved');
    expect(await redis.zrange(key, 0, -1)).toEqual([expect.stringMatching(/^test-pod:[0-9a-f]+\|new-socket$/)]);
    await redis.del(key);
  });
});
