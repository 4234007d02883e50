import type { Sql } from 'postgres';
import { describe, expect } from 'vitest';
import { createMembershipsRepository } from '@chat/db';
import { ERRORS, type AckResponse } from '@chat/protocol';
import { createRoom, emitAck, makeUser, nextEvent, record, sleep, type TestSocket, type TestUser } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * [ext] MAX_ROOMS_PER_USER (3 here): the live rooms one user may belong to. Every handshake puts
 * the socket into all of its user's rooms (one bus subscription each) and presence goes to each,
 * so without a cap one account holding thousands of memberships (60 joins a minute, rooms living
 * a day) made every connect and disconnect of its cost thousands of operations.
 */

const CAP = 3;
// The catalog's words (packages/protocol, kept identical to docs/PROTOCOL.md by its test).
const TOO_MANY_ROOMS = { message: ERRORS.TOO_MANY_ROOMS.message, code: 'TOO_MANY_ROOMS' };

const it = clusterTest({
  pods: 2,
  env: { MAX_ROOMS_PER_USER: String(CAP), ROOM_CREATE_RATE_LIMIT_PER_MINUTE: '1000' },
});

async function rooms(url: string, owner: TestUser, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let index = 0; index < count; index++) ids.push((await createRoom(url, owner, { name: `방 ${index}` })).roomId);
  return ids;
}

async function liveMemberships(sql: Sql, userId: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from room_members m join rooms r on r.id = m.room_id
    where m.user_id = ${userId} and r.expires_at > now()`;
  return row!.n;
}

/** What a refused join must leave as it was: the membership, the count, the room's feed. */
async function roomState(sql: Sql, roomId: string, userId: string) {
  const [row] = await sql<{ member: boolean; member_count: number; last_change_seq: number; events: number }[]>`
    select exists (select 1 from room_members where room_id = ${roomId} and user_id = ${userId}) as member,
           r.member_count, r.last_change_seq::int as last_change_seq,
           (select count(*)::int from room_events e where e.room_id = r.id) as events
    from rooms r where r.id = ${roomId}`;
  return row!;
}

async function joinOk(socket: TestSocket, roomId: string) {
  const ack = await emitAck<{ roomId: string; memberCount: number }>(socket, 'join-room', { roomId });
  expect(ack, `join ${roomId}`).toMatchObject({ ok: true, data: { roomId } });
  return ack;
}

function expectTooManyRooms(ack: AckResponse<unknown>) {
  expect(ack).toEqual({ ok: false, error: TOO_MANY_ROOMS });
}

describe('rooms per user [ext]', () => {
  it('refuses the join past the cap with TOO_MANY_ROOMS and changes nothing; leaving frees a place', async ({ cluster, sql, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('방장');
    const roomIds = await rooms(a!.url, owner, CAP + 1);
    const last = roomIds[CAP]!;
    // Someone in the last room, who must hear nothing of the refused join.
    const observer = await connect(b!.url, owner.token);
    await joinOk(observer, last);
    const observed = record(observer, 'user-joined');

    const user = await makeUser('수집가');
    const socket = await connect(a!.url, user.token);
    const otherDevice = await connect(b!.url, user.token);
    for (const roomId of roomIds.slice(0, CAP)) {
      const moved = nextEvent(otherDevice, 'room-joined');
      await joinOk(socket, roomId);
      await moved;
    }
    expect(await liveMemberships(sql, user.userId)).toBe(CAP);

    const before = await roomState(sql, last, user.userId);
    const error = nextEvent(socket, 'error');
    const otherHeard = record(otherDevice, 'room-joined');
    expectTooManyRooms(await emitAck(socket, 'join-room', { roomId: last }));
    expect(await error).toEqual({ ...TOO_MANY_ROOMS, event: 'join-room' });
    // From the other pod as well: the cap is the user's, not a pod's.
    expectTooManyRooms(await emitAck(otherDevice, 'join-room', { roomId: last }));
    await sleep(300);
    expect(await roomState(sql, last, user.userId)).toEqual(before);
    expect(before.member).toBe(false);
    expect(await liveMemberships(sql, user.userId)).toBe(CAP);
    expect(observed).toEqual([]);
    expect(otherHeard).toEqual([]);
    // Not moved into the room: its messages do not reach the user.
    const heard = record(socket, 'new-message');
    expect((await emitAck(observer, 'send-message', { roomId: last, type: 'text', content: '안녕' })).ok).toBe(true);
    await sleep(200);
    expect(heard).toEqual([]);

    // At the cap, a room the user is already in still answers (idempotent, PROTOCOL §2): from a
    // socket in the room, and in the statement itself (a socket its pod has not moved in yet).
    await joinOk(socket, roomIds[0]!);
    expect(await createMembershipsRepository(sql).add(roomIds[0]!, user.userId, CAP)).toMatchObject({ changed: false, memberCount: 1, changeSeq: null });

    // Leaving one frees a place.
    expect((await emitAck(socket, 'leave-room', { roomId: roomIds[1] })).ok).toBe(true);
    const joined = nextEvent(observer, 'user-joined');
    expect(await emitAck(socket, 'join-room', { roomId: last })).toEqual({ ok: true, data: { roomId: last, memberCount: 2, lastChangeSeq: expect.any(Number) } });
    expect(await joined).toMatchObject({ roomId: last, userId: user.userId, memberCount: 2 });
    expect(await liveMemberships(sql, user.userId)).toBe(CAP);
    // And the place is taken again.
    expectTooManyRooms(await emitAck(socket, 'join-room', { roomId: roomIds[1] }));
  });

  it('does not count memberships of expired rooms', async ({ cluster, sql, connect }) => {
    const [a] = cluster.pods;
    const owner = await makeUser('방장');
    const roomIds = await rooms(a!.url, owner, CAP + 1);
    const user = await makeUser('만료');
    const socket = await connect(a!.url, user.token);
    for (const roomId of roomIds.slice(0, CAP)) await joinOk(socket, roomId);
    expectTooManyRooms(await emitAck(socket, 'join-room', { roomId: roomIds[CAP] }));

    // One of them expires (its membership row stays until the worker purges the room).
    await sql`update rooms set expires_at = now() - interval '1 second' where id = ${roomIds[0]!}`;
    const [kept] = await sql`select 1 from room_members where room_id = ${roomIds[0]!} and user_id = ${user.userId}`;
    expect(kept).toBeDefined();
    await joinOk(socket, roomIds[CAP]!);
    expect(await liveMemberships(sql, user.userId)).toBe(CAP);
  });

  it('holds exactly under concurrent joins of one user on both pods', async ({ cluster, sql, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('방장');
    // Rounds, because it is a race: each time the user's sockets, half on each pod, all join a
    // room of their own at the same moment.
    for (let round = 0; round < 3; round++) {
      const roomIds = await rooms(a!.url, owner, 8);
      const user = await makeUser('동시');
      const sockets = await Promise.all(roomIds.map((_, index) => connect((index % 2 ? b : a)!.url, user.token)));
      const acks = await Promise.all(sockets.map((socket, index) => emitAck(socket, 'join-room', { roomId: roomIds[index] })));
      const accepted = acks.filter((ack) => ack.ok);
      const refused = acks.filter((ack) => !ack.ok);
      expect(accepted, `round ${round}`).toHaveLength(CAP);
      for (const ack of refused) expectTooManyRooms(ack);
      expect(await liveMemberships(sql, user.userId)).toBe(CAP);
      // The refused rooms were not touched.
      const counts = await sql<{ member_count: number }[]>`
        select member_count from rooms where id = any(${roomIds}::uuid[]) order by member_count`;
      expect(counts.map((row) => row.member_count)).toEqual([...Array(8 - CAP).fill(0), ...Array(CAP).fill(1)]);
      for (const socket of sockets) socket.close();
    }
  });
});
