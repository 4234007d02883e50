import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPresenceStore } from '@chat/presence';
import {
  closeAllSockets,
  closeAllWorkers,
  connect,
  createRoom,
  createTestDatabase,
  emitAck,
  joinedOffline,
  makeUser,
  nextEvent,
  record,
  sleep,
  startCluster,
  startPostgresRelay,
  startTestWorker,
  type TestCluster,
  type TestDatabase,
} from '@chat/testing';

/**
 * The worker's presence GC takes a dead pod out of Redis and then needs Postgres to announce
 * it (names, rooms). Its own cluster and worker: no other worker may collect the pod first.
 */

let database: TestDatabase;
let cluster: TestCluster;

beforeAll(async () => {
  database = await createTestDatabase();
  cluster = await startCluster(1, { DATABASE_URL: database.url });
});

afterAll(async () => {
  closeAllSockets();
  await closeAllWorkers();
  await cluster?.close();
  await database?.drop();
});

describe('a pod that dies while Postgres is away from the worker', () => {
  it('is announced once Postgres is back: the collected pod waits in Redis, not lost with the failed run', { timeout: 60_000 }, async () => {
    const [a] = cluster.pods;
    const relay = await startPostgresRelay(cluster.databaseUrl);
    const worker = await startTestWorker(cluster, { DATABASE_URL: relay.url, PRESENCE_GC_INTERVAL_MS: '300' });
    const redis = new Redis(cluster.redisUrl);
    try {
      const alice = await makeUser('김철수');
      const bob = await makeUser('이영희');
      const { roomId } = await createRoom(a!.url, alice);
      await joinedOffline(a!.url, bob, roomId);
      const watcher = await connect(a!.url, alice.token);
      expect(await emitAck(watcher, 'join-room', { roomId })).toMatchObject({ ok: true });
      const events = record(watcher, 'presence');

      // A pod that counted Bob and stopped beating long ago, while the worker cannot reach Postgres.
      await relay.cut();
      const store = createPresenceStore(redis, cluster.redisPrefix);
      await store.connect('ghost-pod', bob.userId);
      await redis.zadd(`${cluster.redisPrefix}:presence:pods`, 'XX', 0, 'ghost-pod');
      const collectedKey = `${cluster.redisPrefix}:presence:collected`;
      const collected = async () => (await redis.lrange(collectedKey, 0, -1)).map((r) => (JSON.parse(r) as { podId: string }).podId);
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && (await redis.zscore(`${cluster.redisPrefix}:presence:pods`, 'ghost-pod')) !== null) await sleep(100);
      await sleep(1500); // a few runs fail on the database
      expect(await collected()).toContain('ghost-pod');
      expect(events).toEqual([]);

      await relay.restore();
      const offline = await nextEvent(watcher, 'presence', 15_000);
      expect(offline).toEqual({ roomId, userId: bob.userId, nicknameMask: '이**', online: false });
      // Settled right after its announcements went out.
      const settledBy = Date.now() + 5000;
      while (Date.now() < settledBy && (await collected()).includes('ghost-pod')) await sleep(50);
      expect(await collected()).not.toContain('ghost-pod');
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
      const release = await store.leaseAnnouncing(800);
      expect(release).not.toBeNull();
      expect(await store.leaseAnnouncing(800)).toBeNull();
      await release!();
      const next = await store.leaseAnnouncing(800);
      expect(next).not.toBeNull();
      // Its holder never releases it (a worker killed mid-run): free again once it lapses.
      await sleep(900);
      const after = await store.leaseAnnouncing(800);
      expect(after).not.toBeNull();
      // The lapsed holder's late release does not free the new holder's lease.
      await next!();
      expect(await store.leaseAnnouncing(800)).toBeNull();
      await after!();
    } finally {
      redis.disconnect();
    }
  });
});
