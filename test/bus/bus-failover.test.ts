import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busChannelPrefix, mainChannel, roomBusChannel } from '@chat/bus';
import { CHAT_NAMESPACE, roomChannel } from '@chat/protocol';
import { closeAllSockets, createRoom, emitAck, makeUser, nextEvent, record, sleep } from '@chat/testing';
import { startRedisCluster, type LocalRedisCluster } from '@chat/testing/redis-cluster';
import { membersOnTwoPods, startCluster, type TestCluster } from '../support/index.ts';

/**
 * A master of the bus cluster dies and comes back (no replicas: its slots are unserved
 * meanwhile). The pods' subscriptions to its channels went with it; once ioredis has
 * re-subscribed, the rooms whose channel it serves are told `resync { roomId }` on every pod
 * holding a member, and their broadcasts arrive again. A private cluster: the test kills a node.
 */

let bus: LocalRedisCluster;
let cluster: TestCluster;

beforeAll(async () => {
  bus = await startRedisCluster();
  cluster = await startCluster(2, { REDIS_BUS_CLUSTER_NODES: bus.nodesString });
}, 60_000);
afterAll(async () => {
  closeAllSockets();
  await cluster?.close();
  await bus?.close();
});

describe('a bus master killed and restarted', () => {
  it('resyncs the rooms whose channel it serves, on every pod, and their broadcasts arrive again', { timeout: 90_000 }, async () => {
    const [a] = cluster.pods;
    const alice = await makeUser('김철수');
    const prefix = busChannelPrefix(cluster.redisPrefix);
    const mainNode = await bus.nodeIndexOf(mainChannel(prefix, CHAT_NAMESPACE));
    // A room whose channel lives on another master than the main channel (membership moves).
    let roomId = '';
    let victim = -1;
    for (let attempt = 0; attempt < 30 && victim < 0; attempt++) {
      roomId = (await createRoom(a!.url, alice)).roomId;
      const node = await bus.nodeIndexOf(roomBusChannel(prefix, CHAT_NAMESPACE, roomChannel(roomId)));
      if (node !== mainNode) victim = node;
    }
    expect(victim).toBeGreaterThanOrEqual(0);
    const { socketA: onA, socketB: onB } = await membersOnTwoPods(cluster, { alice, roomId });
    const resyncsA = record(onA, 'resync');
    const resyncsB = record(onB, 'resync');

    await bus.stopNode(victim);
    await sleep(2000);
    await bus.startNode(victim);
    const deadline = Date.now() + 30_000;
    const told = (seen: { roomId?: string }[]) => seen.some((resync) => resync.roomId === roomId);
    while (!(told(resyncsA) && told(resyncsB)) && Date.now() < deadline) await sleep(100);
    expect(resyncsA).toContainEqual({ roomId });
    expect(resyncsB).toContainEqual({ roomId });

    const crossed = nextEvent(onB, 'new-message', 5000);
    expect((await emitAck(onA, 'send-message', { roomId, type: 'text', content: '다시 왔어요' })).ok).toBe(true);
    expect((await crossed).content).toBe('다시 왔어요');
  });
});
