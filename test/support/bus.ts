import { Redis } from 'ioredis';
import { busChannelPrefix, roomBusChannel } from '@chat/bus';
import { CHAT_NAMESPACE, roomChannel } from '@chat/protocol';
import type { TestCluster } from './cluster.ts';

/**
 * How many connections subscribe the room's bus channel, over every bus node (the run's Redis
 * Cluster or its standalone bus): one per pod that holds a member of the room.
 */
export async function podsSubscribed(cluster: TestCluster, roomId: string): Promise<number> {
  const channel = roomBusChannel(busChannelPrefix(cluster.redisPrefix), CHAT_NAMESPACE, roomChannel(roomId));
  const nodes = cluster.busClusterNodes ? cluster.busClusterNodes.split(',') : [new URL(cluster.redisUrl).host];
  let total = 0;
  for (const node of nodes) {
    const [host, port] = node.split(':');
    const redis = new Redis(Number(port), host!, { maxRetriesPerRequest: 1, lazyConnect: true });
    try {
      total += Number(((await redis.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1]);
    } finally {
      redis.disconnect();
    }
  }
  return total;
}
