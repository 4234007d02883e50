import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createBusPublisher, createBusSubscriber, trackSubscriptions, type BusClient } from '@chat/bus';
import { startPrivateRedis } from '@chat/testing';
import { startRedisCluster, type LocalRedisCluster } from '@chat/testing/redis-cluster';

/**
 * The tracker against real Redis: a channel counts as subscribed only once Redis answered the
 * SSUBSCRIBE, and a subscription lost with its connection (standalone) or its shard's master
 * (cluster) is reported as confirmed `again` once it is back, and only for the channels it held.
 */

const clients: BusClient[] = [];
function track<T extends BusClient>(client: T): T {
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}
afterAll(() => {
  for (const client of clients) client.disconnect();
});

function channel(label: string): string {
  return `test:tracker:${randomBytes(4).toString('hex')}:${label}`;
}

function nextMessage(sub: BusClient, wanted: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message on ${wanted}`)), timeoutMs);
    const listener = (received: string, message: string) => {
      if (received !== wanted) return;
      clearTimeout(timer);
      sub.off('smessage', listener);
      resolve(message);
    };
    sub.on('smessage', listener);
  });
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('on a standalone Redis', () => {
  it('confirms an SSUBSCRIBE only once Redis has answered it', async () => {
    const url = inject('redisUrl');
    const sub = track(createBusSubscriber({ kind: 'standalone', url }));
    const pub = track(createBusPublisher({ kind: 'standalone', url }));
    const tracker = trackSubscriptions(sub);
    const room = channel('a');
    void sub.ssubscribe(room);
    // Sent, not answered: the answer needs at least one turn of the event loop.
    expect(tracker.isConfirmed(room)).toBe(false);
    expect(await tracker.whenConfirmed(room, 5000)).toBe(true);
    expect(tracker.isConfirmed(room)).toBe(true);
    const received = nextMessage(sub, room);
    await pub.spublish(room, 'hello');
    expect(await received).toBe('hello');
    // An unsubscribed channel is not confirmed, and waiting for it gives up at once.
    await sub.sunsubscribe(room);
    expect(tracker.isConfirmed(room)).toBe(false);
    expect(await tracker.whenConfirmed(room, 5000)).toBe(false);
    tracker.close();
  });

  it('reports every channel as confirmed again after its connection was killed and ioredis re-subscribed', async () => {
    const url = inject('redisUrl');
    const sub = track(createBusSubscriber({ kind: 'standalone', url }, { retryStrategy: () => 50 }));
    const pub = track(createBusPublisher({ kind: 'standalone', url }));
    const admin = track(new Redis(url));
    const id = await sub.client('ID');
    const tracker = trackSubscriptions(sub);
    const again: string[] = [];
    tracker.onConfirmed((name, wasLost) => {
      if (wasLost) again.push(name);
    });
    const rooms = [channel('a'), channel('b')];
    for (const room of rooms) void sub.ssubscribe(room);
    for (const room of rooms) expect(await tracker.whenConfirmed(room, 5000)).toBe(true);
    expect(again).toEqual([]);

    await admin.client('KILL', 'ID', String(id));
    await until(() => again.length === 2, 10_000);
    expect(again.sort()).toEqual([...rooms].sort());
    expect(rooms.every((room) => tracker.isConfirmed(room))).toBe(true);
    // And what is published from now on arrives.
    const received = nextMessage(sub, rooms[0]!);
    await pub.spublish(rooms[0]!, 'back');
    expect(await received).toBe('back');
    tracker.close();
  });

  it('a room left while Redis was away is not subscribed again when it is back, and its failed SUNSUBSCRIBE is no unhandled rejection', { timeout: 30_000 }, async () => {
    const redis = await startPrivateRedis();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      // Two attempts per command: ioredis gives up on the queued SUNSUBSCRIBE within a second
      // (the gateway's bus clients wait out ioredis's default of 20).
      const sub = track(createBusSubscriber({ kind: 'standalone', url: redis.url }, { retryStrategy: () => 100, maxRetriesPerRequest: 1 }));
      const failures: string[] = [];
      const tracker = trackSubscriptions(sub, { onError: (_error, name) => failures.push(name) });
      const [kept, left] = [channel('kept'), channel('left')];
      // As the adapter calls them: the promises dropped.
      for (const room of [kept, left]) void sub.ssubscribe(room);
      for (const room of [kept, left]) expect(await tracker.whenConfirmed(room, 5000)).toBe(true);

      await redis.stop();
      void sub.sunsubscribe(left);
      await until(() => failures.includes(left), 10_000);
      expect(failures).toContain(left);

      await redis.start();
      expect(await tracker.whenConfirmed(kept, 10_000)).toBe(true);
      const admin = track(new Redis(redis.url));
      // Before: ioredis re-subscribed `left` with `kept`, a room this pod no longer holds.
      expect(await admin.pubsub('SHARDCHANNELS')).toEqual([kept]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).toEqual([]);
      tracker.close();
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await redis.stop();
    }
  });
});

describe('on a Redis Cluster', () => {
  let redisCluster: LocalRedisCluster;
  beforeAll(async () => {
    redisCluster = await startRedisCluster();
  }, 30_000);
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await redisCluster?.close();
  });

  it('confirms channels on every shard, and after a master is killed and restarted re-confirms only the channels it served', { timeout: 60_000 }, async () => {
    const target = { kind: 'cluster' as const, nodes: redisCluster.nodes };
    const sub = track(createBusSubscriber(target));
    const pub = track(createBusPublisher(target));
    const tracker = trackSubscriptions(sub);
    const again: string[] = [];
    tracker.onConfirmed((name, wasLost) => {
      if (wasLost) again.push(name);
    });
    await new Promise<void>((resolve) => (sub.status === 'ready' ? resolve() : sub.once('ready', () => resolve())));

    // Channels until every master serves at least one.
    const slots = (pub as Cluster).slots;
    await until(() => slots.length > 0 && slots.every(Boolean), 5000);
    const byNode = new Map<string, string[]>();
    for (let i = 0; i < 200 && byNode.size < redisCluster.nodes.length; i++) {
      const name = channel(`c${i}`);
      const owner = (sub as Cluster).slots[calculateSlot(name)]![0]!;
      if (!byNode.has(owner)) byNode.set(owner, [name]);
    }
    expect(byNode.size).toBe(3);
    const all = [...byNode.values()].flat();
    for (const name of all) void sub.ssubscribe(name);
    for (const name of all) expect(await tracker.whenConfirmed(name, 5000)).toBe(true);
    for (const name of all) {
      const received = nextMessage(sub, name);
      await pub.spublish(name, `to ${name}`);
      expect(await received).toBe(`to ${name}`);
    }

    // Kill the master of the first channel, then bring it back with its slots.
    const victimKey = [...byNode.keys()][0]!;
    const victimIndex = redisCluster.nodes.findIndex((node) => `${node.host}:${node.port}` === victimKey);
    expect(victimIndex).toBeGreaterThanOrEqual(0);
    const lostChannel = byNode.get(victimKey)![0]!;
    await redisCluster.stopNode(victimIndex);
    await until(() => !tracker.isConfirmed(lostChannel), 10_000);
    expect(tracker.isConfirmed(lostChannel)).toBe(false);
    await redisCluster.startNode(victimIndex);
    await until(() => again.includes(lostChannel), 30_000);
    expect(again).toEqual([lostChannel]);
    expect(all.every((name) => tracker.isConfirmed(name))).toBe(true);
    // Its broadcasts reach the subscriber again.
    const received = nextMessage(sub, lostChannel);
    await pub.spublish(lostChannel, 'after restart');
    expect(await received).toBe('after restart');
    tracker.close();
  });
});
