import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createPresenceStore } from '@chat/presence';
import { uniquePrefix } from '@chat/testing';

/**
 * Presence at a pod's real size (k8s/README.md: tens of thousands of users per pod), on a real
 * Redis. The heartbeat's rewrite passed every user/count pair to one HSET through Lua's unpack(),
 * which refuses more than ~8,000 values: from 4,000 users on, every heartbeat of the pod failed,
 * the worker took the live pod for dead and announced all its users offline.
 */
describe('presence store: a pod of 50,000 users', () => {
  let redis: Redis;
  let prefix: string;
  const users = Array.from({ length: 50_000 }, (_, i) => `user-${i}`);

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
    prefix = uniquePrefix('presence-scale');
  });

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('rewrites all its counts in one heartbeat, and beats without them in O(1)', async () => {
    const store = createPresenceStore(redis, prefix);
    const counts = new Map(users.map((user, i) => [user, (i % 3) + 1]));
    const first = await store.heartbeat('big-pod', counts);
    expect(first.podWasMissing).toBe(true);
    expect(await redis.hlen(`${prefix}:presence:pod:big-pod`)).toBe(50_000);
    expect(await redis.hget(`${prefix}:presence:pod:big-pod`, 'user-49999')).toBe(String((49_999 % 3) + 1));

    // A beat without counts leaves them as the connect/disconnect scripts keep them.
    await store.disconnect('big-pod', 'user-0');
    const light = await store.heartbeat('big-pod', null);
    expect(light).toEqual({ podWasMissing: false, generation: first.generation });
    expect(await redis.hlen(`${prefix}:presence:pod:big-pod`)).toBe(49_999);

    // Another pod's connect sees those users as online already; a user it does not count is not.
    expect(await store.connect('small-pod', 'user-1')).toEqual({ online: false, podWasMissing: true });
    expect((await store.connect('small-pod', 'user-0')).online).toBe(true);
    expect(await store.onlineUsers(['user-2', 'user-0', 'nobody'])).toEqual(new Set(['user-2', 'user-0']));
  });

  it('the worker collects it once it stops beating: its users go offline unless another pod counts them', async () => {
    const store = createPresenceStore(redis, prefix);
    // big-pod stops beating; small-pod stays alive (counting user-1 and user-0). Beats are
    // scored in whole seconds of Redis's clock, so "stale" is 1.5 s and big-pod's last beat 2.6 s old.
    await new Promise((resolve) => setTimeout(resolve, 2600));
    await store.heartbeat('small-pod', null);
    expect(await store.collectDeadPods(1500)).toBe(1);
    const [dead] = await store.collectedDeadPods();
    expect(dead?.podId).toBe('big-pod');
    expect(dead?.userIds).toHaveLength(49_999);
    expect(dead?.offlineUserIds).toHaveLength(49_998);
    expect(dead?.offlineUserIds).not.toContain('user-1');
  });
});
