import type { Sql } from 'postgres';
import { describe, expect } from 'vitest';
import type { AckResponse, ErrorPayload } from '@chat/protocol';
import { createRoom, emitAck, makeUser, nextEvent, record, sleep } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * [ext] join-room / leave-room that would change a membership: MEMBERSHIP_RATE_LIMIT_PER_MINUTE
 * per user, across pods (set to 4 here). Without it one client toggling a membership sends the
 * room's members a user-joined / user-left pair per round trip and writes the database as fast.
 */

const LIMIT = 4;
const TOO_MANY = '요청이 너무 많습니다. 잠시 후 다시 시도해주세요';

const it = clusterTest({ pods: 2, env: { MEMBERSHIP_RATE_LIMIT_PER_MINUTE: String(LIMIT) } });

async function isMember(sql: Sql, roomId: string, userId: string): Promise<boolean> {
  const rows = await sql`select 1 from room_members where room_id = ${roomId} and user_id = ${userId}`;
  return rows.length > 0;
}

async function memberCount(sql: Sql, roomId: string): Promise<number> {
  const [row] = await sql<{ member_count: number }[]>`select member_count from rooms where id = ${roomId}`;
  return row!.member_count;
}

function expectRefused(ack: AckResponse<unknown>, error: ErrorPayload, event: string) {
  expect(ack.ok).toBe(false);
  if (ack.ok) return;
  expect(ack.error).toEqual({ message: TOO_MANY, code: 'TOO_MANY_REQUESTS', retryAfterMs: expect.any(Number) });
  expect(ack.error.retryAfterMs).toBeGreaterThan(0);
  expect(ack.error.retryAfterMs).toBeLessThanOrEqual(60_000);
  expect(error).toEqual({ message: TOO_MANY, code: 'TOO_MANY_REQUESTS', event, retryAfterMs: expect.any(Number) });
}

describe('membership rate limit [ext]', () => {
  it('refuses the change past the budget, across pods: no row moves, nobody is told', async ({ cluster, sql, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('방장');
    const room = await createRoom(a!.url, owner);
    const observer = await connect(b!.url, owner.token);
    expect((await emitAck(observer, 'join-room', { roomId: room.roomId })).ok).toBe(true);

    const toggler = await makeUser('토글러');
    const onA = await connect(a!.url, toggler.token);
    const onB = await connect(b!.url, toggler.token);
    const joined = record(observer, 'user-joined');
    const left = record(observer, 'user-left');

    // Four changes, two on each pod: join, leave on A; join, leave on B. Each waits until the
    // other pod has mirrored it (its socket hears room-joined / room-left, which travel after
    // the socket move on the same channel): a join from a socket its pod still shows in the
    // room is a re-join, and free.
    const changes = [
      { socket: onA, other: onB, event: 'join-room', mirrored: 'room-joined' },
      { socket: onA, other: onB, event: 'leave-room', mirrored: 'room-left' },
      { socket: onB, other: onA, event: 'join-room', mirrored: 'room-joined' },
      { socket: onB, other: onA, event: 'leave-room', mirrored: 'room-left' },
    ] as const;
    expect(changes).toHaveLength(LIMIT);
    for (const [index, { socket, other, event, mirrored }] of changes.entries()) {
      const seen = nextEvent(other, mirrored);
      const ack = await emitAck(socket, event, { roomId: room.roomId });
      expect(ack.ok, `${event} #${index + 1}`).toBe(true);
      await seen;
    }
    expect(await isMember(sql, room.roomId, toggler.userId)).toBe(false);
    const countBefore = await memberCount(sql, room.roomId);

    // The fifth is refused and changes nothing.
    const error = nextEvent(onA, 'error');
    const refused = await emitAck(onA, 'join-room', { roomId: room.roomId });
    expectRefused(refused, await error, 'join-room');
    await sleep(300);
    expect(await isMember(sql, room.roomId, toggler.userId)).toBe(false);
    expect(await memberCount(sql, room.roomId)).toBe(countBefore);
    expect(joined).toHaveLength(2);
    expect(left).toHaveLength(2);

    // Another user's budget is their own.
    const other = await connect(a!.url, (await makeUser('다른사람')).token);
    expect((await emitAck(other, 'join-room', { roomId: room.roomId })).ok).toBe(true);
  });

  it('does not charge a re-join from a socket already in the room', async ({ cluster, connect }) => {
    const [a] = cluster.pods;
    const user = await makeUser('재참여');
    const room = await createRoom(a!.url, user);
    const socket = await connect(a!.url, user.token);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    // Idempotent re-joins (PROTOCOL §2), well past the budget: all answered as before.
    for (let again = 0; again < LIMIT * 3; again++) {
      const ack = await emitAck<{ roomId: string; memberCount: number }>(socket, 'join-room', { roomId: room.roomId });
      expect(ack).toEqual({ ok: true, data: { roomId: room.roomId, memberCount: 1, lastChangeSeq: expect.any(Number) } });
    }
    // The budget is intact: 3 more changes go through (the first join took one).
    expect((await emitAck(socket, 'leave-room', { roomId: room.roomId })).ok).toBe(true);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    expect((await emitAck(socket, 'leave-room', { roomId: room.roomId })).ok).toBe(true);
    const refused = await emitAck(socket, 'join-room', { roomId: room.roomId });
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.error.code).toBe('TOO_MANY_REQUESTS');
  });

  it('checks the roomId before the budget: a missing roomId costs nothing', async ({ cluster, connect }) => {
    const [a] = cluster.pods;
    const user = await makeUser('검증');
    const socket = await connect(a!.url, user.token);
    for (let attempt = 0; attempt < LIMIT * 2; attempt++) {
      const ack = await emitAck(socket, attempt % 2 ? 'leave-room' : 'join-room', {});
      expect(ack.ok).toBe(false);
      if (!ack.ok) expect(ack.error.code).toBe('ROOM_ID_REQUIRED');
    }
    const room = await createRoom(a!.url, user);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
  });
});
