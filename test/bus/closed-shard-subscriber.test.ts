import type { Socket } from 'node:net';
import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createBusSubscriber } from '@chat/bus';
import { startRedisCluster, type LocalRedisCluster } from '@chat/testing/redis-cluster';

/**
 * A gateway pod survives the SUNSUBSCRIBE a Redis Cluster master pushes as it loses a slot when
 * it reaches a shard subscriber ioredis has just closed. ioredis closes the subscriber of a
 * master that no longer owns slots (its slot map refreshed after a failover or a reshard) and
 * strips its listeners, while the connection may still deliver that push; ioredis reports the
 * unmatched reply as a "Command queue state error" on the closed instance, and with no listener
 * left that was an uncaught exception: the pod died (seen once in ~30 manual failovers under
 * load). patches/ioredis@5.11.1.patch leaves a listener on the closed instance.
 *
 * The race is a matter of milliseconds, so the push is delivered by hand: the exact bytes Redis
 * sends, on the closed subscriber's own socket, right after ioredis closed it.
 */
let redisCluster: LocalRedisCluster;

beforeAll(async () => {
  redisCluster = await startRedisCluster();
}, 60_000);

afterAll(async () => {
  await redisCluster?.close();
}, 30_000);

interface ShardSubscriber {
  getInstance(): Redis | null;
  stop(): void;
}

it('a shard subscriber ioredis closed survives the SUNSUBSCRIBE its master pushes as it loses the slot', async () => {
  const sub = createBusSubscriber({ kind: 'cluster', nodes: redisCluster.nodes }) as Cluster;
  sub.on('error', () => undefined);
  try {
    const channel = 'test:closed-subscriber:room';
    await sub.ssubscribe(channel);
    const group = (sub as unknown as { shardedSubscribers: { shardedSubscribers: Map<string, ShardSubscriber> } }).shardedSubscribers;
    const shard = group.shardedSubscribers.get(sub.slots[calculateSlot(channel)]![0]!)!;
    const socket = (shard.getInstance() as unknown as { stream: Socket }).stream;

    // What ioredis's subscriber reset does to the subscriber of a master left without slots.
    shard.stop();
    const push = `*3\r\n$12\r\nsunsubscribe\r\n$${Buffer.byteLength(channel)}\r\n${channel}\r\n:0\r\n`;
    expect(() => socket.emit('data', Buffer.from(push))).not.toThrow();
  } finally {
    sub.disconnect();
  }
});
