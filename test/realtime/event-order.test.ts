import type { Sql } from 'postgres';
import { expect } from 'vitest';
import { connect, createRoom, emitAck, makeUser, sleep, type TestSocket } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * PROTOCOL §14 "Per-socket order": a client written to the spec emits events without waiting
 * for their answers; join-room and leave-room take effect in the order they were emitted,
 * before anything emitted after them. Each case runs for several fresh users: run side by side,
 * the later event won the race most of the time.
 */

let url: string;
let sql: Sql;
const USERS = 6;

const it = clusterTest({ pods: 1 });
it.beforeAll(({ url: first, sql: db }) => {
  url = first;
  sql = db;
});

async function memberOf(roomId: string, userId: string): Promise<boolean> {
  const [row] = await sql`select count(*)::int as n from room_members where room_id = ${roomId} and user_id = ${userId}`;
  return row!.n === 1;
}

async function freshUserWithRoom() {
  const owner = await makeUser('방장');
  const room = await createRoom(url, owner);
  const user = await makeUser('김철수');
  const socket: TestSocket = await connect(url, user.token);
  return { roomId: room.roomId, user, socket };
}

it('join-room then send-message, not waiting: the send is stored', async () => {
  for (let i = 0; i < USERS; i++) {
    const { roomId, socket } = await freshUserWithRoom();
    const [joined, sent] = await Promise.all([
      emitAck(socket, 'join-room', { roomId }),
      emitAck(socket, 'send-message', { roomId, type: 'text', content: `안녕 ${i}` }),
    ]);
    expect(joined.ok, JSON.stringify(joined)).toBe(true);
    expect(sent.ok, JSON.stringify(sent)).toBe(true);
    socket.disconnect();
  }
});

it('join-room then leave-room, not waiting: the user has left', async () => {
  for (let i = 0; i < USERS; i++) {
    const { roomId, user, socket } = await freshUserWithRoom();
    const [joined, left] = await Promise.all([emitAck(socket, 'join-room', { roomId }), emitAck(socket, 'leave-room', { roomId })]);
    expect([joined.ok, left.ok], JSON.stringify([joined, left])).toEqual([true, true]);
    expect(await memberOf(roomId, user.userId)).toBe(false);
    socket.disconnect();
  }
});

it('leave-room then send-message, not waiting: the send is refused and nothing is stored', async () => {
  for (let i = 0; i < USERS; i++) {
    const { roomId, socket } = await freshUserWithRoom();
    expect((await emitAck(socket, 'join-room', { roomId })).ok).toBe(true);
    const [left, sent] = await Promise.all([
      emitAck(socket, 'leave-room', { roomId }),
      emitAck(socket, 'send-message', { roomId, type: 'text', content: '떠난 뒤' }),
    ]);
    expect(left.ok).toBe(true);
    expect(sent).toMatchObject({ ok: false, error: { code: 'NOT_A_MEMBER' } });
    const [row] = await sql`select count(*)::int as n from messages where room_id = ${roomId}`;
    expect(row!.n).toBe(0);
    socket.disconnect();
  }
});

it('leave-room then join-room, not waiting: the user is a member, once, and the socket in the room', async () => {
  for (let i = 0; i < USERS; i++) {
    const { roomId, user, socket } = await freshUserWithRoom();
    expect((await emitAck(socket, 'join-room', { roomId })).ok).toBe(true);
    const [left, joined] = await Promise.all([emitAck(socket, 'leave-room', { roomId }), emitAck(socket, 'join-room', { roomId })]);
    expect([left.ok, joined.ok]).toEqual([true, true]);
    expect(joined).toMatchObject({ data: { memberCount: 1 } });
    await sleep(50);
    expect(await memberOf(roomId, user.userId)).toBe(true);
    const [room] = await sql`select member_count from rooms where id = ${roomId}`;
    expect(room!.member_count).toBe(1);
    const sent = await emitAck(socket, 'send-message', { roomId, type: 'text', content: '다시' });
    expect(sent.ok, JSON.stringify(sent)).toBe(true);
    socket.disconnect();
  }
});
