import calculateSlot from 'cluster-key-slot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busChannelPrefix, mainChannel, roomBusChannel } from '@chat/bus';
import { CHAT_NAMESPACE, roomChannel } from '@chat/protocol';
import { closeAllSockets, createRoom, makeUser, record, sleep } from '@chat/testing';
import { startRedisCluster, type LocalRedisCluster } from '@chat/testing/redis-cluster';
import { deliveredAcrossPods, expectAckedStoredOnce, membersOnTwoPods, readWholeHistory, startAckedStream, startCluster, type TestCluster } from '../support/index.ts';

/**
 * Bus capacity grown while it serves: a fourth master joins the bus cluster and a room's channel
 * slot moves to it (as `redis-cli --cluster reshard` moves slots), under a stream of
 * acknowledged sends across pods. The old master drops the pods' subscriptions to the channel
 * (Redis sends SUNSUBSCRIBE when a slot moves away); they must be made again on the new master,
 * the room told `resync { roomId }` on both pods, and its messages cross pods again — every
 * acknowledged one stored once, `seq` gap-free. A private cluster: the test adds a node.
 */

let bus: LocalRedisCluster;
let cluster: TestCluster;

beforeAll(async () => {
  bus = await startRedisCluster();
  cluster = await startCluster(2, { REDIS_BUS_CLUSTER_NODES: bus.nodesString, MESSAGE_RATE_LIMIT_PER_MINUTE: '100000' });
}, 60_000);
afterAll(async () => {
  closeAllSockets();
  await cluster?.close();
  await bus?.close();
});

describe('a room channel slot moved to a master added to the running bus', () => {
  it('re-subscribes there, resyncs the room on every pod, and loses no acknowledged message', { timeout: 90_000 }, async () => {
    const [a, b] = cluster.pods;
    const alice = await makeUser('김철수');
    const prefix = busChannelPrefix(cluster.redisPrefix);
    const mainSlot = calculateSlot(mainChannel(prefix, CHAT_NAMESPACE));
    // A room whose channel has a slot of its own (not the main channel's, which carries membership moves).
    let roomId = '';
    for (let attempt = 0; attempt < 10 && !roomId; attempt++) {
      const created = (await createRoom(a!.url, alice)).roomId;
      if (calculateSlot(roomBusChannel(prefix, CHAT_NAMESPACE, roomChannel(created))) !== mainSlot) roomId = created;
    }
    expect(roomId).not.toBe('');
    const channel = roomBusChannel(prefix, CHAT_NAMESPACE, roomChannel(roomId));
    const { socketA: onA, socketB: onB, heardByBob } = await membersOnTwoPods(cluster, { alice, roomId });
    const resyncsA = record(onA, 'resync');
    const resyncsB = record(onB, 'resync');

    // A stream of acknowledged sends from pod A through the fault.
    const stream = startAckedStream(onA, roomId, '이동 중');

    await sleep(500);
    const added = await bus.addMaster();
    await bus.moveSlot(calculateSlot(channel), added);
    expect(await bus.nodeIndexOf(channel)).toBe(added);

    const told = (seen: { roomId?: string }[]) => seen.some((resync) => resync.roomId === roomId);
    await expect.poll(() => told(resyncsA) && told(resyncsB), { timeout: 30_000, interval: 100 }).toBe(true);
    await deliveredAcrossPods(onA, heardByBob, roomId, '이동 후');
    await stream.stop();
    expect(stream.acked.size).toBeGreaterThan(10);
    expectAckedStoredOnce(await readWholeHistory(b!.url, roomId), stream.acked);
  });
});
