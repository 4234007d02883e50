import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitAck, request } from '@chat/testing';
import { startRedisSentinel, type LocalRedisSentinel } from '@chat/testing/redis-sentinel';
import { deliveredAcrossPods, membersOnTwoPods, shortRoomExpires, startAppsOn, type AppsOnServers, type TestCluster } from '../support/index.ts';

/**
 * The state Redis (and the bus on it) found through Redis Sentinel (REDIS_SENTINELS,
 * REDIS_SENTINEL_NAME): two pods chat through the master the sentinel names, the master dies,
 * the sentinel promotes the replica, and the pods and the worker carry on on it — sends
 * acknowledged and delivered across pods, readiness back, the worker's BullMQ sweep expiring a
 * room through the bus — without a restart or a changed address.
 */
describe('state Redis behind Sentinel', () => {
  let sentinel: LocalRedisSentinel;
  let cluster: TestCluster;
  let env: Record<string, string>;
  let apps: AppsOnServers;

  beforeAll(async () => {
    sentinel = await startRedisSentinel();
    env = {
      // Nothing listens here: an app that ignored the sentinels would never reach its Redis.
      REDIS_URL: 'redis://127.0.0.1:1',
      REDIS_SENTINELS: sentinel.sentinels,
      REDIS_SENTINEL_NAME: sentinel.name,
      // The bus on the same Redis (a Redis Cluster bus does not go through Sentinel).
      REDIS_BUS_CLUSTER_NODES: '',
    };
    apps = await startAppsOn(env, { worker: 'sentinel-worker' });
    cluster = apps.cluster;
  }, 60_000);

  afterAll(async () => {
    await apps?.stop();
    await sentinel?.close();
  }, 40_000);

  it('chats across pods before and after the master fails over to the replica', { timeout: 90_000 }, async () => {
    const [a, b] = cluster.pods;
    const { alice, roomId, socketA, socketB, heardByBob } = await membersOnTwoPods(cluster);

    const before = await emitAck(socketA, 'send-message', { roomId, type: 'text', content: '장애 전' });
    expect(before).toMatchObject({ ok: true, data: { seq: 1 } });
    await expect.poll(() => heardByBob.map((message) => message.content)).toContain('장애 전');

    const { from, to } = await sentinel.failOver();
    expect(to).not.toBe(from);

    // Both pods find the new master by themselves (ready throughout: readiness does not hang on
    // Redis), and the room's traffic flows.
    for (const pod of [a!, b!]) expect((await request(pod.url, 'GET', '/readyz')).status).toBe(200);
    await deliveredAcrossPods(socketA, heardByBob, roomId, '장애 후');
    const history = await request<{ messages: { content: string }[] }>(b!.url, 'GET', `/api/rooms/${roomId}/messages`);
    expect(history.body.messages.map((message) => message.content)).toEqual(expect.arrayContaining(['장애 전', '장애 후']));

    // The worker's queues and its emitter found the new master too: a room created now expires
    // on time and its member hears it.
    await shortRoomExpires(a!.url, alice, socketB);
  });
});
