import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { describe, expect } from 'vitest';
import { createPresenceStore } from '@chat/presence';
import { connect, createRoom, emitAck, joinedOffline, makeUser, nextEvent, record } from '@chat/testing';
import { clusterTest, startTestWorker, type TestCluster } from '../support/index.ts';

/** A pod's worth of users (k8s/README.md: tens of thousands of sockets per pod). */
const GHOST_USERS = 20_000;
const GHOST_ROOMS = 2_000;

/**
 * A large pod dies: the worker's presence GC must announce all of its users' rooms in one run,
 * within the database's statement timeout. Its lookups over the pod's users once parsed the
 * id list again for every compared row and timed out at this size on every run, so such a
 * pod was never announced (test/storage/bulk-lookups.test.ts has the lookups alone).
 * Its own cluster and worker: no other worker may collect the pod first.
 */
const it = clusterTest({ pods: 1, ownDatabase: true });
let cluster: TestCluster;

it.beforeAll(({ cluster: started }) => {
  cluster = started;
});

describe('a dead pod of 20,000 users', () => {
  it('is collected and announced in the rooms of its users', { timeout: 120_000 }, async () => {
    const [pod] = cluster.pods;
    const sql = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
    const redis = new Redis(cluster.redisUrl);
    let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;
    try {
      // Alice watches her room; Bob, one of the ghost pod's users, is a member of it.
      const alice = await makeUser('김철수');
      const bob = await makeUser('이영희');
      const { roomId } = await createRoom(pod!.url, alice);
      await joinedOffline(pod!.url, bob, roomId);
      const watcher = await connect(pod!.url, alice.token);
      expect(await emitAck(watcher, 'join-room', { roomId })).toMatchObject({ ok: true });
      const events = record(watcher, 'presence');

      // The rest of the pod's users, each a member of one of 2,000 other live rooms.
      const others = Array.from({ length: GHOST_USERS - 1 }, () => randomUUID());
      const rooms = Array.from({ length: GHOST_ROOMS }, () => randomUUID());
      await sql`insert into users (id, nickname)
        select id::uuid, '유령' from json_array_elements_text(${JSON.stringify(others)}::text::json) as x(id)`;
      await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
        select id::uuid, 'ghost', ${alice.userId}, ${GHOST_USERS / GHOST_ROOMS}, now(), now() + interval '1 day'
        from json_array_elements_text(${JSON.stringify(rooms)}::text::json) as x(id)`;
      const memberships = others.map((userId, i) => ({ room_id: rooms[i % GHOST_ROOMS], user_id: userId }));
      await sql`insert into room_members (room_id, user_id)
        select room_id, user_id from json_to_recordset(${JSON.stringify(memberships)}::text::json) as x(room_id uuid, user_id uuid)`;
      await sql`analyze`;

      // The pod counted them all, then stopped beating long ago.
      const store = createPresenceStore(redis, cluster.redisPrefix);
      const users = [bob.userId, ...others];
      for (let at = 0; at < users.length; at += 500) {
        await Promise.all(users.slice(at, at + 500).map((userId) => store.connect('big-ghost-pod', userId)));
      }
      await redis.zadd(`${cluster.redisPrefix}:presence:pods`, 'XX', 0, 'big-ghost-pod');

      worker = await startTestWorker(cluster, { PRESENCE_GC_INTERVAL_MS: '500' });
      // A run every 0.5 s takes a few seconds at this size; before, every run timed out on the
      // database and the pod was announced only once the planner's statistics happened to
      // change its plan (55 s in one run), or never.
      const offline = await nextEvent(watcher, 'presence', 20_000);
      expect(offline).toEqual({ roomId, userId: bob.userId, nicknameMask: '이**', online: false });
      expect(events.filter((event) => event.userId === bob.userId)).toHaveLength(1);
    } finally {
      await worker?.close();
      redis.disconnect();
      await sql.end({ timeout: 5 });
    }
  });
});
