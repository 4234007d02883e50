import { busChannelPrefix, createShardedEmitter } from '@chat/bus';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect } from 'vitest';
import { createDatabase, createMembershipsRepository, createMessagesRepository, createUsersRepository } from '@chat/db';
import { createPresenceStore } from '@chat/presence';
import { CHAT_NAMESPACE, type ServerToClientEvents } from '@chat/protocol';
import { PRESENCE_STALE_AFTER_MS, runPresenceGc } from '@chat/worker';
import {
  connect,
  createRoom,
  emitAck,
  joinedOffline,
  makeUser,
  nextEvent,
  record,
  sleep,
  startTcpRelay,
} from '@chat/testing';
import { clusterTest, startTestWorker, type TestCluster } from '../support/index.ts';

/**
 * The worker's presence GC takes a dead pod out of Redis and then needs Postgres to announce
 * it (names, rooms). Its own cluster and worker: no other worker may collect the pod first.
 */

const it = clusterTest({ pods: 1, ownDatabase: true });
let cluster: TestCluster;

it.beforeAll(({ cluster: started }) => {
  cluster = started;
});

/** Bob, offline, is a member of Alice's room; Alice watches it for presence events. */
async function roomWatchedByAlice(aliceName: string, bobName: string) {
  const [a] = cluster.pods;
  const alice = await makeUser(aliceName);
  const bob = await makeUser(bobName);
  const { roomId } = await createRoom(a!.url, alice);
  await joinedOffline(a!.url, bob, roomId);
  const watcher = await connect(a!.url, alice.token);
  expect(await emitAck(watcher, 'join-room', { roomId })).toMatchObject({ ok: true });
  return { roomId, bob, watcher, events: record(watcher, 'presence') };
}

/** A pod that counted the user and stopped beating long ago: the GC's next run collects it. */
async function ghostPod(redis: Redis, podId: string, userId: string) {
  await createPresenceStore(redis, cluster.redisPrefix).connect(podId, userId);
  await redis.zadd(`${cluster.redisPrefix}:presence:pods`, 'XX', 0, podId);
}

async function collectedPods(redis: Redis): Promise<string[]> {
  const records = await redis.lrange(`${cluster.redisPrefix}:presence:collected`, 0, -1);
  return records.map((record) => (JSON.parse(record) as { podId: string }).podId);
}

/** Until the worker has taken the pod out of the live set (collected, announced or not). */
async function untilCollected(redis: Redis, podId: string) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && (await redis.zscore(`${cluster.redisPrefix}:presence:pods`, podId)) !== null) await sleep(100);
}

describe('a pod that dies while Postgres is away from the worker', () => {
  it('is announced once Postgres is back: the collected pod waits in Redis, not lost with the failed run', { timeout: 60_000 }, async () => {
    const relay = await startTcpRelay(cluster.databaseUrl);
    const worker = await startTestWorker(cluster, { DATABASE_URL: relay.url, PRESENCE_GC_INTERVAL_MS: '300' });
    const redis = new Redis(cluster.redisUrl);
    try {
      const { roomId, bob, watcher, events } = await roomWatchedByAlice('김철수', '이영희');

      // Bob's pod dies while the worker cannot reach Postgres.
      await relay.cut();
      await ghostPod(redis, 'ghost-pod', bob.userId);
      await untilCollected(redis, 'ghost-pod');
      await sleep(1500); // a few runs fail on the database
      expect(await collectedPods(redis)).toContain('ghost-pod');
      expect(events).toEqual([]);

      await relay.restore();
      const offline = await nextEvent(watcher, 'presence', 15_000);
      expect(offline).toEqual({ roomId, userId: bob.userId, nicknameMask: '이**', online: false });
      // Settled right after its announcements went out.
      const settledBy = Date.now() + 5000;
      while (Date.now() < settledBy && (await collectedPods(redis)).includes('ghost-pod')) await sleep(50);
      expect(await collectedPods(redis)).not.toContain('ghost-pod');
    } finally {
      redis.disconnect();
      await worker.close();
      await relay.close();
    }
  });
});

describe('the announcing lease', () => {
  it('lets one GC run at a time announce collected pods, and lapses if its holder dies', async () => {
    const redis = new Redis(cluster.redisUrl);
    try {
      const store = createPresenceStore(redis, `${cluster.redisPrefix}:lease-test`);
      const first = await store.leaseAnnouncing(800);
      expect(first).not.toBeNull();
      expect(await store.leaseAnnouncing(800)).toBeNull();
      await first!.release();
      const next = await store.leaseAnnouncing(800);
      expect(next).not.toBeNull();
      // Its holder never releases it (a worker killed mid-run): free again once it lapses.
      await sleep(900);
      expect(await next!.renew()).toBe(false);
      const after = await store.leaseAnnouncing(800);
      expect(after).not.toBeNull();
      // The lapsed holder's late release does not free the new holder's lease.
      await next!.release();
      expect(await store.leaseAnnouncing(800)).toBeNull();
      await after!.release();
    } finally {
      redis.disconnect();
    }
  });

  it('is kept by a holder that renews it, past its first ttl', async () => {
    const redis = new Redis(cluster.redisUrl);
    try {
      const store = createPresenceStore(redis, `${cluster.redisPrefix}:lease-renew-test`);
      // Margins of ~0.8 s either way, for a loaded machine's late timers.
      const lease = await store.leaseAnnouncing(2000);
      expect(lease).not.toBeNull();
      await sleep(1200);
      expect(await lease!.renew()).toBe(true);
      await sleep(1200);
      // 2.4 s after it was taken: lapsed without the renewal, held until 3.2 s with it.
      expect(await store.leaseAnnouncing(2000)).toBeNull();
      await lease!.release();
      const other = await store.leaseAnnouncing(2000);
      expect(other).not.toBeNull();
      await other!.release();
    } finally {
      redis.disconnect();
    }
  });

  it('holds the worker back: a collected pod is announced only once the run holding the lease lets go', { timeout: 60_000 }, async () => {
    const worker = await startTestWorker(cluster, { PRESENCE_GC_INTERVAL_MS: '300' });
    const redis = new Redis(cluster.redisUrl);
    try {
      const { roomId, bob, watcher, events } = await roomWatchedByAlice('박민수', '최지우');

      // Another run holds the lease (taken between the worker's own runs).
      const store = createPresenceStore(redis, cluster.redisPrefix);
      let held = await store.leaseAnnouncing(30_000);
      const takenBy = Date.now() + 5000;
      while (!held && Date.now() < takenBy) {
        await sleep(20);
        held = await store.leaseAnnouncing(30_000);
      }
      expect(held).not.toBeNull();

      await ghostPod(redis, 'ghost-pod-2', bob.userId);
      await untilCollected(redis, 'ghost-pod-2');
      await sleep(1500); // several runs, all without the lease
      expect(await collectedPods(redis)).toContain('ghost-pod-2');
      expect(events).toEqual([]);

      await held!.release();
      const offline = await nextEvent(watcher, 'presence', 10_000);
      expect(offline).toEqual({ roomId, userId: bob.userId, nicknameMask: '최**', online: false });
    } finally {
      redis.disconnect();
      await worker.close();
    }
  });

  it('stops a run whose lease lapsed before it announced: by then another run may be announcing them', { timeout: 30_000 }, async () => {
    const redis = new Redis(cluster.redisUrl);
    const database = createDatabase({ url: cluster.databaseUrl, maxConnections: 2 });
    try {
      const { bob, events } = await roomWatchedByAlice('정하늘', '한바다');
      await ghostPod(redis, 'ghost-pod-3', bob.userId);
      const store = createPresenceStore(redis, cluster.redisPrefix);
      const leaseKey = `${cluster.redisPrefix}:presence:gc-lease`;
      // The run's last lookup is where a slow Postgres would have let its lease lapse and
      // another run take it over.
      const presence = {
        ...store,
        onlineUsers: async (userIds: readonly string[]) => {
          await redis.set(leaseKey, 'another-run', 'PX', 30_000);
          return store.onlineUsers(userIds);
        },
      };
      const result = await runPresenceGc({
        presence,
        memberships: createMembershipsRepository(database.sql),
        messages: createMessagesRepository(database.sql),
        users: createUsersRepository(database.db),
        emitter: createShardedEmitter<ServerToClientEvents>(redis, { channelPrefix: busChannelPrefix(cluster.redisPrefix), nsp: CHAT_NAMESPACE }),
        logger: pino({ level: 'silent' }),
        staleAfterMs: PRESENCE_STALE_AFTER_MS,
      });

      expect(result).toMatchObject({ deadPods: 0, offline: 0, failure: expect.objectContaining({ name: 'LeaseLostError' }) });
      // Still waiting for the run that holds the lease now, whose lease this run left alone.
      expect(await collectedPods(redis)).toContain('ghost-pod-3');
      expect(await redis.get(leaseKey)).toBe('another-run');
      await sleep(500);
      expect(events).toEqual([]);
      await redis.del(leaseKey);
    } finally {
      redis.disconnect();
      await database.close();
    }
  });
});
