import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busChannelPrefix, mainChannel, roomBusChannel } from '@chat/bus';
import { CHAT_NAMESPACE, roomChannel } from '@chat/protocol';
import { createRoom, makeUser, record, request, sleep } from '@chat/testing';
import { startRedisCluster, type LocalRedisCluster } from '@chat/testing/redis-cluster';
import {
  deliveredAcrossPods,
  expectAckedStoredOnce,
  membersOnTwoPods,
  readWholeHistory,
  shortRoomExpires,
  startAppsOn,
  type AppsOnServers,
  startAckedStream,
  type TestCluster,
  withAppLogsOnFailure,
} from '../support/index.ts';

/**
 * A Redis Cluster as production runs it — every master with a replica — carrying the bus and
 * the state, and a master dying for good: the cluster promotes its replica (another node, another
 * port), and nothing restarts. Under a stream of acknowledged sends across pods: the pods'
 * subscriptions follow the slots to the promoted replica and the room is told `resync { roomId }`
 * on both pods; messages cross pods again; every acknowledged message is in the history once,
 * `seq` gap-free; then the state's own master (presence, BullMQ under the `{prefix}` hash tag)
 * fails over the same way and the worker still expires a room, its queues kept by the replica.
 */

describe('a Redis Cluster with replicas, masters failing over', () => {
  let redisCluster: LocalRedisCluster;
  let cluster: TestCluster;
  let apps: AppsOnServers;

  beforeAll(async () => {
    redisCluster = await startRedisCluster({ replicas: 1 });
    const env = {
      // Nothing listens here: bus and state are the cluster.
      REDIS_URL: 'redis://127.0.0.1:1',
      REDIS_BUS_CLUSTER_NODES: redisCluster.nodesString,
      REDIS_STATE_CLUSTER_NODES: redisCluster.nodesString,
      MESSAGE_RATE_LIMIT_PER_MINUTE: '100000',
      // A room on a master of its own is found by creating rooms until one lands there: two
      // masters in three are refused, and ten rooms a minute (the default) ran out in CI.
      ROOM_CREATE_RATE_LIMIT_PER_MINUTE: '1000',
    };
    apps = await startAppsOn(env, { worker: 'cluster-failover-worker' });
    cluster = apps.cluster;
  }, 90_000);

  afterAll(async () => {
    await apps?.stop();
    await redisCluster?.close();
  }, 40_000);

  /**
   * Two users on different pods in a room whose channel's master serves neither the main
   * channel nor the state (its failover is the room's alone), resyncs recorded.
   */
  async function roomOnItsOwnMaster() {
    const alice = await makeUser('김철수');
    const prefix = busChannelPrefix(cluster.redisPrefix);
    const mainNode = await redisCluster.nodeIndexOf(mainChannel(prefix, CHAT_NAMESPACE));
    const stateNode = await redisCluster.nodeIndexOf(`{${cluster.redisPrefix}}`);
    let roomId = '';
    let master = -1;
    for (let attempt = 0; attempt < 40 && master < 0; attempt++) {
      roomId = (await createRoom(cluster.pods[0]!.url, alice)).roomId;
      const node = await redisCluster.nodeIndexOf(roomBusChannel(prefix, CHAT_NAMESPACE, roomChannel(roomId)));
      if (node !== mainNode && node !== stateNode) master = node;
    }
    expect(master).toBeGreaterThanOrEqual(0);
    const { socketA: onA, socketB: onB, heardByBob } = await membersOnTwoPods(cluster, { alice, roomId });
    const resyncs = [record(onA, 'resync'), record(onB, 'resync')] as { roomId?: string }[][];
    return { alice, roomId, master, stateNode, onA, onB, heardByBob, resyncs };
  }

  /** Both pods resync the room, its messages cross again, every acknowledged one stored once. */
  async function roomRecovered(room: Awaited<ReturnType<typeof roomOnItsOwnMaster>>, stream: ReturnType<typeof startAckedStream>, last: string) {
    await withAppLogsOnFailure(async () => {
      const told = (seen: { roomId?: string }[]) => seen.some((resync) => resync.roomId === room.roomId);
      await expect.poll(() => room.resyncs.every(told), { timeout: 30_000, interval: 100 }).toBe(true);
      await deliveredAcrossPods(room.onA, room.heardByBob, room.roomId, last);
      await stream.stop();
      expect(stream.acked.size).toBeGreaterThan(10);
      expectAckedStoredOnce(await readWholeHistory(cluster.pods[1]!.url, room.roomId), stream.acked);
    });
  }

  it('follows a manual failover (CLUSTER FAILOVER on the replica: how a cluster is upgraded)', { timeout: 90_000 }, async () => {
    const room = await roomOnItsOwnMaster();
    const replica = await redisCluster.replicaOf(room.master);
    const stream = startAckedStream(room.onA, room.roomId, '교대');
    await sleep(500);
    // The old master stays up, as the replica of the new one: no connection breaks, only the
    // slot's owner changes.
    await redisCluster.failOverTo(replica);
    expect(await redisCluster.nodeIndexOf(roomBusChannel(busChannelPrefix(cluster.redisPrefix), CHAT_NAMESPACE, roomChannel(room.roomId)))).toBe(replica);
    await roomRecovered(room, stream, '교대 후');

    // The state's master hands over the same way: BullMQ's blocked reads on it are released, and
    // the worker's queues, now on the new master, still expire a room on time.
    await redisCluster.failOverTo(await redisCluster.replicaOf(room.stateNode));
    await shortRoomExpires(cluster.pods[0]!.url, room.alice, room.onB);
  });

  it('follows the promoted replicas of dead masters: rooms resynced, nothing acknowledged lost, the worker still on time', { timeout: 120_000 }, async () => {
    const [a, b] = cluster.pods;
    const room = await roomOnItsOwnMaster();
    const { alice, onB, stateNode } = room;
    const stream = startAckedStream(room.onA, room.roomId, '흐름');
    await sleep(500);
    await redisCluster.stopNode(room.master);
    expect(await redisCluster.promotedFor(room.master)).not.toBe(room.master);
    await roomRecovered(room, stream, '승격 후');

    // The state's master next: presence, socket places and BullMQ's queues live on it.
    await redisCluster.stopNode(stateNode);
    await redisCluster.promotedFor(stateNode);
    for (const pod of [a!, b!]) {
      await expect.poll(async () => (await request(pod.url, 'GET', '/readyz')).status, { timeout: 30_000, interval: 250 }).toBe(200);
    }
    await shortRoomExpires(a!.url, alice, onB);
  });
});
