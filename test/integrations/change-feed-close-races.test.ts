import { createHash, randomBytes } from 'node:crypto';
import postgres, { type Sql } from 'postgres';
import { describe, expect } from 'vitest';
import { createRoomExpiryRepository, createRoomOccupancyRepository } from '@chat/db';
import { ERRORS, type NewMessagePayload } from '@chat/protocol';
import { createRoom, emitAck, makeUser, request, sleep } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * PROTOCOL §16, §17 [ext]: a change that waited for the room while the server API closed it is
 * judged by the room as the close left it, as the close and extend themselves are ("judged once
 * the call holds the room"). A send or a delete queued behind the close must not land in the
 * closed room, numbered after its `room-lifetime-changed`.
 *
 * The race is made deterministic: the test holds the room's row lock, queues the close behind
 * it, then the send or delete behind the close (each seen waiting in pg_stat_activity), and lets go.
 */
const KEY = `sk_${randomBytes(24).toString('hex')}`;
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');
const asBackend = { headers: { 'x-api-key': KEY } };

const it = clusterTest({
  pods: 1,
  ownDatabase: true,
  env: { SERVER_API_KEYS: `backend:${sha256(KEY)}`, ROOM_OCCUPANCY_GRACE_MS: '600000' },
});

/** Holds the room's row lock (as a write of the room does) until `release()`. */
async function holdRoom(sql: Sql, roomId: string) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  const holder = sql.begin(async (tx) => {
    await tx`select id from rooms where id = ${roomId} for update`;
    locked();
    await released;
  });
  await isLocked;
  return {
    release: async () => {
      release();
      await holder;
    },
  };
}

/** Until `count` sessions of this database wait for a lock (bounded: 200 polls). */
async function lockWaiters(sql: Sql, count: number): Promise<void> {
  for (let poll = 0; poll < 200; poll++) {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`;
    if (row!.n >= count) return;
    await sleep(25);
  }
  throw new Error(`fewer than ${count} sessions waiting for a lock`);
}

type Change = { changeSeq: number; event: string; payload: Record<string, unknown> };
const feedOf = async (url: string, roomId: string): Promise<Change[]> =>
  (await request(url, 'GET', `/api/server/rooms/${roomId}/changes?limit=100`, asBackend)).body.changes;

describe('changes queued behind a close [ext]', () => {
  it('a send that waited for the room while it was closed is refused, not stored after the close', async ({ url, sql, connect }) => {
    const author = await makeUser('작성');
    const room = await createRoom(url, author);
    const socket = await connect(url, author.token);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);

    const held = await holdRoom(sql, room.roomId);
    const closed = request(url, 'POST', `/api/server/rooms/${room.roomId}/close`, asBackend);
    await lockWaiters(sql, 1);
    const sent = emitAck<NewMessagePayload>(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '닫히는 중' }, 10_000);
    await lockWaiters(sql, 2);
    await held.release();

    expect((await closed).status).toBe(200);
    const ack = await sent;
    expect(ack).toEqual({ ok: false, error: { code: 'ROOM_EXPIRED', message: ERRORS.ROOM_EXPIRED.message } });
    expect((await feedOf(url, room.roomId)).map((change) => change.event)).toEqual(['user-joined', 'room-lifetime-changed']);
    expect(await sql`select 1 from messages where room_id = ${room.roomId}`).toHaveLength(0);
  });

  it('a delete that waited for the room while it was closed answers 404 and records no change', async ({ url, sql, connect }) => {
    const author = await makeUser('삭제');
    const room = await createRoom(url, author);
    const socket = await connect(url, author.token);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    const sent = await emitAck<NewMessagePayload>(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '지울 것' });
    expect(sent.ok).toBe(true);
    const messageId = sent.ok ? sent.data.messageId : '';

    const held = await holdRoom(sql, room.roomId);
    const closed = request(url, 'POST', `/api/server/rooms/${room.roomId}/close`, asBackend);
    await lockWaiters(sql, 1);
    const deleted = request(url, 'DELETE', `/api/messages/${messageId}`, { token: author.token });
    await lockWaiters(sql, 2);
    await held.release();

    expect((await closed).status).toBe(200);
    expect(await deleted).toEqual({
      status: 404,
      body: { statusCode: 404, error: 'Not Found', message: ERRORS.MESSAGE_NOT_FOUND.message, code: 'MESSAGE_NOT_FOUND' },
    });
    const feed = await feedOf(url, room.roomId);
    expect(feed.map((change) => change.event)).toEqual(['user-joined', 'new-message', 'room-lifetime-changed']);
    expect(feed[1]!.payload.content).toBe('지울 것');
  });
  it('a join that waited for the room while it was closed is refused: no member, no user-joined after the close', async ({ url, sql, connect }) => {
    const owner = await makeUser('방장');
    const joiner = await makeUser('참가');
    const room = await createRoom(url, owner);
    const socket = await connect(url, joiner.token);

    const held = await holdRoom(sql, room.roomId);
    const closed = request(url, 'POST', `/api/server/rooms/${room.roomId}/close`, asBackend);
    await lockWaiters(sql, 1);
    const joined = emitAck(socket, 'join-room', { roomId: room.roomId }, 10_000);
    await lockWaiters(sql, 2);
    await held.release();

    expect((await closed).status).toBe(200);
    expect(await joined).toEqual({ ok: false, error: { code: 'ROOM_EXPIRED', message: ERRORS.ROOM_EXPIRED.message } });
    expect((await feedOf(url, room.roomId)).map((change) => change.event)).toEqual(['room-lifetime-changed']);
    expect(await sql`select 1 from room_members where room_id = ${room.roomId}`).toHaveLength(0);
    const [stored] = await sql<{ member_count: number }[]>`select member_count from rooms where id = ${room.roomId}`;
    expect(stored!.member_count).toBe(0);
  });
});

describe('worker notices queued behind a close [ext]', () => {
  /** The worker's statements run on a client of their own: the fixture's two connections hold the lock and poll. */
  const workerSql = <T>(cluster: { databaseUrl: string }, run: (sql: Sql) => Promise<T>) => {
    const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
    return run(sql).finally(() => sql.end());
  };

  it('the sweep\'s room-expiring that waited for the room while it was closed is not recorded', async ({ url, sql, cluster }) => {
    const owner = await makeUser('경고');
    // Inside the notice window, not warned yet (no worker runs in this file).
    const room = await createRoom(url, owner, { ttlSeconds: 200 });
    const held = await holdRoom(sql, room.roomId);
    const closed = request(url, 'POST', `/api/server/rooms/${room.roomId}/close`, asBackend);
    await lockWaiters(sql, 1);
    const warned = workerSql(cluster, (db) => createRoomExpiryRepository(db).recordExpiring([room.roomId], 30_000));
    await lockWaiters(sql, 2);
    await held.release();

    expect((await closed).status).toBe(200);
    expect(await warned).toEqual([]);
    expect((await feedOf(url, room.roomId)).map((change) => change.event)).toEqual(['room-lifetime-changed']);
  });

  it('room-occupied that waited for the room while it was closed is not recorded', async ({ url, sql, cluster }) => {
    const owner = await makeUser('점유');
    const room = await createRoom(url, owner);
    const held = await holdRoom(sql, room.roomId);
    const closed = request(url, 'POST', `/api/server/rooms/${room.roomId}/close`, asBackend);
    await lockWaiters(sql, 1);
    const recorded = workerSql(cluster, (db) => createRoomOccupancyRepository(db).recordMany([{ roomId: room.roomId, occupied: true }]));
    await lockWaiters(sql, 2);
    await held.release();

    expect((await closed).status).toBe(200);
    expect(await recorded).toEqual([]);
    expect((await feedOf(url, room.roomId)).map((change) => change.event)).toEqual(['room-lifetime-changed']);
  });
});
