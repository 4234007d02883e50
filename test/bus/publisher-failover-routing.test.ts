import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createBusPublisher, type BusClient } from '@chat/bus';
import { sleep } from '@chat/testing';
import { startRedisCluster, type LocalRedisCluster } from '@chat/testing/redis-cluster';

/**
 * The bus publisher on a Redis Cluster follows a manual failover to the new master. The demoted
 * master keeps accepting SPUBLISH for its old slots — as a replica, with no MOVED to correct the
 * client — and leaves the delivery to the cluster bus's relay, which under load lost messages.
 */
let redisCluster: LocalRedisCluster;
let publisher: BusClient;

beforeAll(async () => {
  redisCluster = await startRedisCluster({ replicas: 1 });
}, 90_000);

afterAll(async () => {
  publisher?.disconnect();
  await redisCluster?.close();
}, 30_000);

/** How many SPUBLISH a node has served (INFO commandstats). */
async function spublishCalls(index: number): Promise<number> {
  const node = redisCluster.nodes[index]!;
  const client = new Redis({ host: node.host, port: node.port, lazyConnect: true });
  try {
    await client.connect();
    const stats = String(await client.info('commandstats'));
    return Number(/cmdstat_spublish:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  } finally {
    client.disconnect();
  }
}

it('sends SPUBLISH to the new master within seconds of a manual failover, not on to the demoted one', { timeout: 60_000 }, async () => {
  const channel = 'test:publisher-routing:room';
  publisher = createBusPublisher({ kind: 'cluster', nodes: redisCluster.nodes });
  publisher.on('error', () => undefined);
  const master = await redisCluster.nodeIndexOf(channel);
  await publisher.spublish(channel, 'before');
  expect(await spublishCalls(master)).toBeGreaterThan(0);

  const replica = await redisCluster.replicaOf(master);
  await redisCluster.failOverTo(replica);
  // Past the publisher's slot map refresh (2 s), with room for a slow machine.
  await sleep(4000);
  const demotedBefore = await spublishCalls(master);
  const promotedBefore = await spublishCalls(replica);
  for (let sent = 0; sent < 5; sent++) await publisher.spublish(channel, `after ${sent}`);
  expect(await spublishCalls(master)).toBe(demotedBefore);
  expect(await spublishCalls(replica)).toBe(promotedBefore + 5);
});
