import { Redis } from 'ioredis';
import type { Sql } from 'postgres';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect } from 'vitest';
import {
  closeAllSockets,
  connect,
  createRoom,
  createTestDatabase,
  emitAck,
  killAllProcesses,
  makeUser,
  nextEvent,
  request,
  sleep,
  spawnWorker,
  startPrivateRedis,
  type PrivateRedis,
  type TestDatabase,
  type TestUser,
} from '@chat/testing';
import { clusterTest, closeAllWorkers, startCluster, startTestWorker, type TestCluster } from '../support/index.ts';

/**
 * Issue 3, expiry (PROTOCOL §10) on real services: a BullMQ worker sweeping a two-pod cluster,
 * two workers at once, a worker process killed mid-purge, and a Redis restart.
 * Every worker here runs on a database of this file's own: a sweep touches every room it sees.
 * The sweep purges memberships; messages stay in their expiry day's partition, unreadable,
 * until the partition job drops the whole day (issue 17, test/worker/partitions.test.ts).
 */

const EXPIRED = '만료된 방입니다';
const NOT_FOUND = '방을 찾을 수 없습니다';

const it = clusterTest({ pods: 2, ownDatabase: true });
let cluster: TestCluster;
let sql: Sql;

it.beforeAll(({ cluster: started, sql: db }) => {
  cluster = started;
  sql = db;
});

async function rowCounts(roomId: string) {
  const [row] = await sql<{ messages: number; members: number; rooms: number; expired: number }[]>`
    select (select count(*)::int from messages where room_id = ${roomId}) as messages,
           (select count(*)::int from room_members where room_id = ${roomId}) as members,
           (select count(*)::int from rooms where id = ${roomId}) as rooms,
           (select count(*)::int from rooms where id = ${roomId} and expired_at is not null) as expired`;
  return row!;
}

/** Polls `probe` until it returns true, at most `timeoutMs`; returns how long it took. */
async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<number> {
  const started = Date.now();
  for (let attempt = 0; Date.now() - started < timeoutMs && attempt < 10_000; attempt++) {
    if (await probe()) return Date.now() - started;
    await sleep(everyMs);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/** Inserts `count` text messages straight into the room (and advances its seq), in one statement. */
async function insertMessages(roomId: string, userId: string, count: number): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`
      insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at, is_deleted)
      select gen_random_uuid(), r.id, ${userId}, 'text', 'bulk ' || g, r.last_seq + g, now(), r.expires_at, g % 10 = 0
      from rooms r, generate_series(1, ${count}::int) g where r.id = ${roomId}`;
    await tx`update rooms set last_seq = last_seq + ${count}::int where id = ${roomId}`;
  });
}

/** Adds `count` fresh users as members of the room, in one statement. */
async function insertMembers(roomId: string, count: number): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`
      with added as (
        insert into users (id, nickname) select gen_random_uuid(), '회원' || g from generate_series(1, ${count}::int) g
        returning id)
      insert into room_members (room_id, user_id) select ${roomId}, id from added`;
    await tx`update rooms set member_count = member_count + ${count}::int where id = ${roomId}`;
  });
}

/** Sweep jobs in this prefix's queue that failed, and the workers that completed the others. */
async function sweepJobStats(redisUrl: string, prefix: string) {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    const base = `${prefix}:bull:room-sweep`;
    const failed = await redis.zcard(`${base}:failed`);
    const completed = await redis.zrange(`${base}:completed`, 0, -1);
    const workers = new Set<string>();
    for (const id of completed) {
      const by = await redis.hget(`${base}:${id}`, 'pb'); // BullMQ's `processedBy`: the worker's name
      if (by) workers.add(by);
    }
    return { failed, completed: completed.length, workers };
  } finally {
    redis.disconnect();
  }
}

describe('room expiry sweep', () => {
  // A failed test must not leave its workers (closed by startWorker) or processes sweeping
  // under the next one.
  afterEach(async () => {
    await killAllProcesses();
  });
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;

  it('announces, refuses, purges and leaves a tombstone (ttlSeconds: 2, both pods)', { timeout: 30_000 }, async ({ startWorker }) => {
    const [a, b] = cluster.pods;
    const worker = await startWorker({ ROOM_EXPIRING_NOTICE_SECONDS: '1', POD_NAME: 'sweep-a' });
    alice = await makeUser('김철수');
    bob = await makeUser('이영희');
    // Everything slow happens before the room's two seconds start.
    const sa = await connect(a!.url, alice.token);
    const sb = await connect(b!.url, bob.token);
    const room = await createRoom(a!.url, alice, { ttlSeconds: 2 });
    roomId = room.roomId;
    const expiringA = nextEvent(sa, 'room-expiring', 5000);
    const expiringB = nextEvent(sb, 'room-expiring', 5000);
    const expiredA = nextEvent(sa, 'room-expired', 8000);
    const expiredB = nextEvent(sb, 'room-expired', 8000);
    const expiredAt: number[] = [];
    for (const pending of [expiringA, expiringB, expiredA, expiredB]) pending.catch(() => undefined);
    void expiredA.then(() => expiredAt.push(Date.now()), () => undefined);
    void expiredB.then(() => expiredAt.push(Date.now()), () => undefined);

    const joins = await Promise.all([sa, sb].map((socket) => emitAck(socket, 'join-room', { roomId })));
    expect(joins).toMatchObject([{ ok: true }, { ok: true }]);
    const acks = await Promise.all(
      ([[sa, '안녕하세요!'], [sb, '반가워요']] as const).map(([socket, content]) =>
        emitAck<{ messageId: string }>(socket, 'send-message', { roomId, type: 'text', content }),
      ),
    );
    const first = acks[0]!;
    if (!first.ok || !acks[1]!.ok) throw new Error(`send failed: ${JSON.stringify(acks)}`);
    // A soft-deleted message must be purged too.
    expect((await request(a!.url, 'DELETE', `/api/messages/${first.data.messageId}`, { token: alice.token })).status).toBe(200);
    expect(await rowCounts(roomId)).toMatchObject({ messages: 2, members: 2 });

    const notice = { roomId, expiresAt: room.expiresAt, changeSeq: expect.any(Number) };
    expect(await expiringA).toEqual(notice);
    expect(await expiringB).toEqual(notice);
    expect(await expiredA).toEqual({ roomId, changeSeq: expect.any(Number) });
    expect(await expiredB).toEqual({ roomId, changeSeq: expect.any(Number) });
    const lags = expiredAt.map((at) => at - Date.parse(room.expiresAt));
    console.log(`sweep lag (expiresAt → room-expired received), pod A / pod B: ${lags.join(' ms / ')} ms`);
    expect(Math.max(...lags)).toBeLessThan(5000);

    for (const socket of [sa, sb]) {
      expect(await emitAck(socket, 'join-room', { roomId })).toMatchObject({ ok: false, error: { message: EXPIRED } });
      expect(await emitAck(socket, 'send-message', { roomId, type: 'text', content: '늦었나요' })).toMatchObject({
        ok: false,
        error: { message: EXPIRED },
      });
    }

    const purgeMs = await waitFor('memberships purged', async () => {
      const counts = await rowCounts(roomId);
      return counts.members === 0 && counts.expired === 1;
    }, Math.max(0, Date.parse(room.expiresAt) + 10_000 - Date.now()));
    console.log(`memberships purged and tombstone set ${purgeMs} ms after room-expired`);
    // The messages wait for their day's partition to be dropped; nothing below can read them.
    expect(await rowCounts(roomId)).toEqual({ messages: 2, members: 0, rooms: 1, expired: 1 });
    const [tomb] = await sql<{ member_count: number }[]>`select member_count from rooms where id = ${roomId}`;
    expect(tomb?.member_count).toBe(0);

    for (const pod of [a!, b!]) {
      const history = await request(pod.url, 'GET', `/api/rooms/${roomId}/messages`);
      expect(history).toMatchObject({ status: 410, body: { message: EXPIRED } });
      const view = await request(pod.url, 'GET', `/api/rooms/${roomId}`);
      expect(view).toMatchObject({ status: 200, body: { roomId, expired: true, memberCount: 0 } });
      // Alice's membership is gone with the rest: the member list (for members only) is closed to her.
      const members = await request(pod.url, 'GET', `/api/rooms/${roomId}/members`, { token: alice.token });
      expect(members).toMatchObject({ status: 403, body: { code: 'NOT_A_MEMBER' } });
    }
    // A client that connects now is put in no expired room; a join is still refused as expired.
    const late = await connect(b!.url, alice.token);
    expect(await emitAck(late, 'join-room', { roomId })).toMatchObject({ ok: false, error: { message: EXPIRED } });
    await worker.close();
  });

  it('deletes the tombstone after ROOM_TOMBSTONE_TTL_SECONDS; then the room is not found', { timeout: 20_000 }, async ({ startWorker }) => {
    const [a, b] = cluster.pods;
    const worker = await startWorker({ ROOM_TOMBSTONE_TTL_SECONDS: '1', POD_NAME: 'sweep-tomb' });
    const gone = await waitFor('tombstone deleted', async () => (await rowCounts(roomId)).rooms === 0, 8000);
    console.log(`tombstone deleted ${gone} ms after a worker with ROOM_TOMBSTONE_TTL_SECONDS=1 started`);
    // Its day's partition is still there (the room expired today): its messages went with it.
    expect(await rowCounts(roomId)).toMatchObject({ messages: 0 });
    // Both pods had the room cached; neither may keep calling it expired.
    for (const pod of [a!, b!]) {
      const socket = await connect(pod.url, bob.token);
      expect(await emitAck(socket, 'join-room', { roomId })).toMatchObject({ ok: false, error: { message: NOT_FOUND } });
      expect(await emitAck(socket, 'send-message', { roomId, type: 'text', content: '있나요' })).toMatchObject({
        ok: false,
        error: { message: NOT_FOUND },
      });
      expect(await request(pod.url, 'GET', `/api/rooms/${roomId}/messages`)).toMatchObject({
        status: 404,
        body: { message: NOT_FOUND },
      });
      expect((await request(pod.url, 'GET', `/api/rooms/${roomId}`)).status).toBe(404);
    }
    await worker.close();
  });

  it('two workers sweeping at once reach the same end state, without errors', { timeout: 40_000 }, async ({ startWorker }) => {
    const [a] = cluster.pods;
    const owner = await makeUser('박민수');
    const rooms = await Promise.all([0, 1, 2].map(() => createRoom(a!.url, owner, { ttlSeconds: 3 })));
    const members = await Promise.all(Array.from({ length: 6 }, (_, i) => makeUser(`회원${i}`)));
    for (const member of members) {
      const socket = await connect(a!.url, member.token);
      for (const room of rooms) expect(await emitAck(socket, 'join-room', { roomId: room.roomId })).toMatchObject({ ok: true });
    }
    for (const room of rooms) await insertMessages(room.roomId, owner.userId, 20_000);
    // Short intervals and small batches, so the two workers' sweeps overlap.
    const env = { SWEEP_BATCH_SIZE: '200', SWEEP_INTERVAL_MS: '150', ROOM_EXPIRING_NOTICE_SECONDS: '0' };
    const workers = await Promise.all([
      startWorker({ ...env, POD_NAME: 'twin-1' }),
      startWorker({ ...env, POD_NAME: 'twin-2' }),
    ]);
    const took = await waitFor('three rooms expired by two workers', async () => {
      const counts = await Promise.all(rooms.map((room) => rowCounts(room.roomId)));
      return counts.every((c) => c.members === 0 && c.expired === 1);
    }, 25_000, 200);
    console.log(`two workers: 3 rooms expired ${took} ms after start`);
    // Still the same a few sweeps later: nothing comes back, nothing is left behind, and the
    // messages are not deleted room by room (their day is dropped whole).
    await sleep(600);
    for (const room of rooms) expect(await rowCounts(room.roomId)).toEqual({ messages: 20_000, members: 0, rooms: 1, expired: 1 });
    // A sweep without messages to delete is short: give both workers the time to take some.
    await waitFor('both workers ran sweeps', async () => {
      const { workers } = await sweepJobStats(cluster.redisUrl, cluster.redisPrefix);
      return workers.has('twin-1') && workers.has('twin-2');
    }, 10_000, 200).catch(() => undefined);
    const stats = await sweepJobStats(cluster.redisUrl, cluster.redisPrefix);
    console.log(`two workers: ${stats.completed} sweep jobs kept as completed, by ${[...stats.workers].join(', ')}`);
    expect(stats.failed).toBe(0);
    expect(stats.workers).toContain('twin-1');
    expect(stats.workers).toContain('twin-2');
    await Promise.all(workers.map((worker) => worker.close()));
  });

  it('a worker process killed mid-purge leaves nothing half-visible; the next one finishes', { timeout: 60_000 }, async ({ startWorker }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('최지훈');
    // The worker process boots (tsx, a few seconds) while the room fills. Pods cache a room's
    // expiresAt (it never changes), so the room gets a really short life, not an SQL rewrite.
    const proc = spawnWorker(cluster, { SWEEP_BATCH_SIZE: '50', POD_NAME: 'doomed-worker', LOG_LEVEL: 'warn' });
    const room = await createRoom(a!.url, owner, { ttlSeconds: 12 });
    const socket = await connect(b!.url, owner.token);
    expect(await emitAck(socket, 'join-room', { roomId: room.roomId })).toMatchObject({ ok: true });
    // The sweep's per-room work is the memberships now (messages wait for their day's
    // partition): enough of them to outlast a few sweeps of 50.
    const total = 30_000;
    await insertMessages(room.roomId, owner.userId, 1000);
    await insertMembers(room.roomId, total - 1);
    // Otherwise a sweep could have marked the (then empty) room expired under the insert.
    expect(Date.now(), 'the rows went in before the room expired').toBeLessThan(Date.parse(room.expiresAt));
    await sleep(Math.max(0, Date.parse(room.expiresAt) - Date.now() + 50));

    // Nothing of the room may be readable at any moment from now on.
    let watching = true;
    const seen = new Set<string>();
    const watcher = (async () => {
      for (let i = 0; watching && i < 2000; i++) {
        const history = await request(b!.url, 'GET', `/api/rooms/${room.roomId}/messages?limit=5`).catch(
          (error: Error) => ({ status: 0, body: { message: error.message } }),
        );
        seen.add(`${history.status} ${history.body?.message}`);
        await sleep(50);
      }
    })();

    let atKill = -1;
    await waitFor('purge under way', async () => {
      const { members } = await rowCounts(room.roomId);
      if (members < total - 2000 && members > 0) {
        await proc.kill('SIGKILL');
        atKill = members;
        return true;
      }
      if (members === 0) throw new Error('the purge finished before it could be interrupted');
      return false;
    }, 20_000, 20);
    expect(proc.child.signalCode).toBe('SIGKILL');
    await sleep(500);
    const afterKill = await rowCounts(room.roomId);
    console.log(`worker SIGKILLed with ${atKill} of ${total} memberships left (${afterKill.members} after it died)`);
    expect(afterKill.members).toBeGreaterThan(0);
    expect(afterKill.expired).toBe(0);
    expect(await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '아직?' })).toMatchObject({
      ok: false,
      error: { message: EXPIRED },
    });

    const next = await startWorker({ SWEEP_BATCH_SIZE: '1000', POD_NAME: 'successor' });
    const took = await waitFor('the next worker finishes the purge', async () => {
      const c = await rowCounts(room.roomId);
      return c.members === 0 && c.expired === 1;
    }, 20_000, 100);
    console.log(`the next worker finished the purge in ${took} ms`);
    watching = false;
    await watcher;
    expect([...seen]).toEqual([`410 ${EXPIRED}`]);
    expect(proc.output()).not.toMatch(/"level":(50|60)/);
    await next.close();
  });
});

describe('Redis restart', () => {
  let redis: PrivateRedis;
  let database2: TestDatabase;
  let local: TestCluster;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    database2 = await createTestDatabase();
    local = await startCluster(1, { REDIS_URL: redis.url, DATABASE_URL: database2.url });
  });
  afterAll(async () => {
    closeAllSockets();
    await closeAllWorkers();
    await local?.close();
    // Let the closed pod's last Redis replies arrive before the server goes away.
    await sleep(500);
    await redis?.stop();
    await database2?.drop();
  });

  it('the next sweep still runs after the worker’s Redis restarted empty', { timeout: 45_000 }, async () => {
    const [pod] = local.pods;
    expect(local.redisUrl).toBe(redis.url);
    const worker = await startTestWorker(local, { ROOM_EXPIRING_NOTICE_SECONDS: '0' });
    const owner = await makeUser('정하나');
    const probeDb = postgres(local.databaseUrl, { max: 1, onnotice: () => {} });
    const expiredRow = async (id: string) =>
      (await probeDb<{ n: number }[]>`select count(*)::int as n from rooms where id = ${id} and expired_at is not null`)[0]!.n === 1;
    try {
      const before = await createRoom(pod!.url, owner, { ttlSeconds: 1 });
      await waitFor('a room expires before the restart', () => expiredRow(before.roomId), 8000);

      await redis.stop();
      await sleep(1500);
      await redis.start();
      const check = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      const keysAfterRestart = await check.dbsize();
      check.disconnect();
      expect(keysAfterRestart).toBeLessThan(5); // it really came back empty

      // The gateway's adapter resubscribes by itself: wait until the pod answers a join again on a
      // room that outlives the wait. A short-lived room here would run out while the pod recovers
      // on a loaded machine, after which its join is refused as expired for good.
      const socket = await connect(pod!.url, owner.token);
      const probe = await createRoom(pod!.url, owner, { ttlSeconds: 3600 });
      await waitFor('the pod answers a join again', async () => {
        const ack = await emitAck(socket, 'join-room', { roomId: probe.roomId });
        return ack.ok;
      }, 15_000, 250);
      const after = await createRoom(pod!.url, owner, { ttlSeconds: 2 });
      expect(await emitAck(socket, 'join-room', { roomId: after.roomId })).toMatchObject({ ok: true });
      const expired = nextEvent(socket, 'room-expired', 15_000);
      const took = await waitFor('a room expires after the restart', () => expiredRow(after.roomId), 15_000);
      console.log(`after the Redis restart, a room was swept ${took} ms later`);
      expect(await expired).toEqual({ roomId: after.roomId, changeSeq: expect.any(Number) });
    } finally {
      await probeDb.end({ timeout: 5 });
    }
    await worker.close();
  });
});
