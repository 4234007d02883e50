import { describe, expect } from 'vitest';
import {
  connect,
  createRoom,
  emitAck,
  makeUser,
  nextEvent,
  record,
  recordFor,
  request,
  sleep,
  type TestSocket,
  type TestUser,
} from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/** PROTOCOL §2 join-room, §3 leave-room, §5 typing: happy paths with exact payloads (one pod). */

const it = clusterTest({ pods: 1 });
let url: string;
it.beforeAll(({ url: first }) => {
  url = first;
});

/** How long "nothing arrives" is given to prove itself. */
const QUIET_MS = 250;

/**
 * What a user's other device must not see when that user joins or leaves elsewhere. Whether it
 * should get its own room-joined / room-left is not fixed by the protocol, so not asserted.
 */
const OTHERS_ONLY_EVENTS = ['user-joined', 'user-left', 'typing-indicator', 'error'] as const;

async function memberCountOverRest(roomId: string): Promise<number> {
  const result = await request(url, 'GET', `/api/rooms/${roomId}`);
  expect(result.status).toBe(200);
  return result.body.memberCount;
}

async function scene(names: string[] = ['김철수', '이영희']) {
  const users: TestUser[] = [];
  const sockets: TestSocket[] = [];
  for (const name of names) {
    const user = await makeUser(name);
    users.push(user);
    sockets.push(await connect(url, user.token));
  }
  const room = await createRoom(url, users[0]!);
  return { users, sockets, room, roomId: room.roomId };
}

async function join(socket: TestSocket, roomId: string) {
  const ack = await emitAck(socket, 'join-room', { roomId });
  if (!ack.ok) throw new Error(`join failed: ${JSON.stringify(ack)}`);
  return ack.data as { roomId: string; memberCount: number };
}

describe('join-room (§2)', () => {
  it('answers the caller with room-joined {roomId, memberCount} and ack {ok:true, data}', async () => {
    const { sockets, roomId } = await scene(['김철수']);
    const [alice] = sockets as [TestSocket];
    const joinedEvents = record(alice, 'room-joined');
    const ack = await emitAck(alice, 'join-room', { roomId });
    expect(ack).toEqual({ ok: true, data: { roomId, memberCount: 1, lastChangeSeq: expect.any(Number) } });
    await sleep(50);
    expect(joinedEvents).toEqual([{ roomId, memberCount: 1, lastChangeSeq: expect.any(Number) }]);
    expect(await memberCountOverRest(roomId)).toBe(1);
  });

  it('an upper-case roomId names the same room in send-message, typing and leave-room too', async () => {
    const { users, sockets, roomId } = await scene(['김철수', '이영희']);
    const [alice, bob] = sockets as [TestSocket, TestSocket];
    const upper = roomId.toUpperCase();
    await join(alice, upper);
    await join(bob, roomId);
    const typing = nextEvent(bob, 'typing-indicator');
    expect(await emitAck(alice, 'typing', { roomId: upper, isTyping: true })).toEqual({ ok: true, data: {} });
    expect(await typing).toEqual({ roomId, userId: users[0]!.userId, nicknameMask: '김**', isTyping: true });
    const sent = await emitAck(alice, 'send-message', { roomId: upper, type: 'text', content: '대문자' });
    expect(sent).toMatchObject({ ok: true, data: { roomId, seq: 1 } });
    const left = nextEvent(bob, 'user-left');
    expect(await emitAck(alice, 'leave-room', { roomId: upper })).toEqual({ ok: true, data: { roomId, changeSeq: expect.any(Number) } });
    expect(await left).toMatchObject({ roomId, userId: users[0]!.userId, memberCount: 1 });
  });

  it('works without an ack callback (plain emit)', async () => {
    const { sockets, roomId } = await scene(['김철수']);
    const [alice] = sockets as [TestSocket];
    const joined = nextEvent(alice, 'room-joined');
    (alice as unknown as { emit(event: string, payload: unknown): void }).emit('join-room', { roomId });
    expect(await joined).toEqual({ roomId, memberCount: 1, lastChangeSeq: expect.any(Number) });
  });

  it('announces user-joined {roomId, userId, nicknameMask, memberCount} to the others only', async () => {
    const { users, sockets, roomId } = await scene(['김철수', '이영희']);
    const [alice, bob] = sockets as [TestSocket, TestSocket];
    const bobUser = users[1]!;
    await join(alice, roomId);
    // Bob's phone, connected before the join: it is Bob's own socket, so no user-joined for it.
    const bobPhone = await connect(url, bobUser.token);
    const aliceSaw = record(alice, 'user-joined');
    const bobSaw = record(bob, 'user-joined');
    const bobPhoneSaw = recordFor(bobPhone, OTHERS_ONLY_EVENTS, QUIET_MS + 100);

    expect(await emitAck(bob, 'join-room', { roomId })).toEqual({ ok: true, data: { roomId, memberCount: 2, lastChangeSeq: expect.any(Number) } });
    await sleep(QUIET_MS);
    expect(aliceSaw).toEqual([{ roomId, userId: bobUser.userId, nicknameMask: '이**', memberCount: 2, changeSeq: expect.any(Number) }]);
    expect(bobSaw).toEqual([]);
    expect(await bobPhoneSaw).toEqual([]);
  });

  it('masks one- and two-character nicknames as the protocol says', async () => {
    const { users, sockets, roomId } = await scene(['김철수', 'A', '김수']);
    const [alice, solo, pair] = sockets as [TestSocket, TestSocket, TestSocket];
    await join(alice, roomId);
    const seen = record(alice, 'user-joined');
    await join(solo, roomId);
    await join(pair, roomId);
    await sleep(100);
    expect(seen).toEqual([
      { roomId, userId: users[1]!.userId, nicknameMask: '*', memberCount: 2, changeSeq: expect.any(Number) },
      { roomId, userId: users[2]!.userId, nicknameMask: '김*', memberCount: 3, changeSeq: expect.any(Number) },
    ]);
  });

  it('is idempotent: joining again (same socket or another device) → room-joined, no user-joined, same count', async () => {
    const { users, sockets, roomId } = await scene(['김철수', '이영희']);
    const [alice, bob] = sockets as [TestSocket, TestSocket];
    await join(alice, roomId);
    await join(bob, roomId);
    const bobLaptop = await connect(url, users[1]!.token);
    const aliceSaw = record(alice, 'user-joined');
    const bobJoined = record(bob, 'room-joined');
    const laptopJoined = record(bobLaptop, 'room-joined');

    expect(await emitAck(bob, 'join-room', { roomId })).toEqual({ ok: true, data: { roomId, memberCount: 2, lastChangeSeq: expect.any(Number) } });
    expect(await emitAck(bobLaptop, 'join-room', { roomId })).toEqual({ ok: true, data: { roomId, memberCount: 2, lastChangeSeq: expect.any(Number) } });
    expect(await emitAck(alice, 'join-room', { roomId })).toEqual({ ok: true, data: { roomId, memberCount: 2, lastChangeSeq: expect.any(Number) } });
    await sleep(QUIET_MS);
    // Each caller got its room-joined (whether a user's other devices also hear of it is open).
    expect(bobJoined[0]).toEqual({ roomId, memberCount: 2, lastChangeSeq: expect.any(Number) });
    expect(laptopJoined.at(-1)).toEqual({ roomId, memberCount: 2, lastChangeSeq: expect.any(Number) });
    expect(aliceSaw).toEqual([]);
    expect(await memberCountOverRest(roomId)).toBe(2);
  });

  it('accepts an upper-case roomId as the same room (answered in canonical lower case)', async () => {
    const { sockets, roomId } = await scene(['김철수']);
    const [alice] = sockets as [TestSocket];
    expect(await emitAck(alice, 'join-room', { roomId: roomId.toUpperCase() })).toEqual({
      ok: true,
      data: { roomId, memberCount: 1, lastChangeSeq: expect.any(Number) },
    });
    expect(await memberCountOverRest(roomId)).toBe(1);
  });

  it('puts every socket of the joining user into the room: the other device receives messages', async () => {
    const { users, sockets, roomId } = await scene(['김철수', '이영희']);
    const [alice, bob] = sockets as [TestSocket, TestSocket];
    const bobPhone = await connect(url, users[1]!.token);
    await join(alice, roomId);
    await join(bob, roomId);
    const onPhone = nextEvent(bobPhone, 'new-message');
    await emitAck(alice, 'send-message', { roomId, type: 'text', content: '폰에도 와요?' });
    expect(await onPhone).toMatchObject({ roomId, content: '폰에도 와요?', userId: users[0]!.userId });
  });

  it('a disconnect does not end membership: no user-left, count unchanged', async () => {
    const { sockets, roomId } = await scene(['김철수', '이영희']);
    const [alice, bob] = sockets as [TestSocket, TestSocket];
    await join(alice, roomId);
    await join(bob, roomId);
    const aliceSaw = record(alice, 'user-left');
    bob.close();
    await sleep(QUIET_MS);
    expect(aliceSaw).toEqual([]);
    expect(await memberCountOverRest(roomId)).toBe(2);
  });
});

describe('leave-room (§3)', () => {
  it('room-left {roomId} + ack to the caller, user-left {roomId, userId, memberCount} to the others', async () => {
    const { users, sockets, roomId } = await scene(['김철수', '이영희']);
    const [alice, bob] = sockets as [TestSocket, TestSocket];
    await join(alice, roomId);
    await join(bob, roomId);
    const bobPhone = await connect(url, users[1]!.token); // in the room since connect
    const aliceSaw = record(alice, 'user-left');
    const aliceRoomLeft = record(alice, 'room-left');
    const bobSaw = record(bob, 'room-left');
    const bobUserLeft = record(bob, 'user-left');
    const phoneSaw = recordFor(bobPhone, OTHERS_ONLY_EVENTS, QUIET_MS + 100);

    expect(await emitAck(bob, 'leave-room', { roomId })).toEqual({ ok: true, data: { roomId, changeSeq: expect.any(Number) } });
    await sleep(QUIET_MS);
    expect(bobSaw).toEqual([{ roomId, changeSeq: aliceSaw[0]!.changeSeq }]);
    expect(bobUserLeft).toEqual([]);
    expect(aliceSaw).toEqual([{ roomId, userId: users[1]!.userId, memberCount: 1, changeSeq: expect.any(Number) }]);
    expect(aliceRoomLeft).toEqual([]);
    // The leaver's other device is not told that its own user left.
    expect(await phoneSaw).toEqual([]);
    expect(await memberCountOverRest(roomId)).toBe(1);
  });

  it('after leaving, none of the user’s sockets receives the room’s messages', async () => {
    const { users, sockets, roomId } = await scene(['김철수', '이영희']);
    const [alice, bob] = sockets as [TestSocket, TestSocket];
    await join(alice, roomId);
    await join(bob, roomId);
    const bobPhone = await connect(url, users[1]!.token);
    await emitAck(bob, 'leave-room', { roomId });
    const bobMessages = record(bob, 'new-message');
    const phoneMessages = record(bobPhone, 'new-message');
    const aliceOwn = nextEvent(alice, 'new-message');
    expect(await emitAck(alice, 'send-message', { roomId, type: 'text', content: '아무도 없나요' })).toMatchObject({ ok: true });
    await aliceOwn;
    await sleep(QUIET_MS);
    expect(bobMessages).toEqual([]);
    expect(phoneMessages).toEqual([]);
  });

  it('leaving and joining again announces the user again', async () => {
    const { users, sockets, roomId } = await scene(['김철수', '이영희']);
    const [alice, bob] = sockets as [TestSocket, TestSocket];
    await join(alice, roomId);
    await join(bob, roomId);
    await emitAck(bob, 'leave-room', { roomId });
    const seen = nextEvent(alice, 'user-joined');
    expect(await emitAck(bob, 'join-room', { roomId })).toEqual({ ok: true, data: { roomId, memberCount: 2, lastChangeSeq: expect.any(Number) } });
    expect(await seen).toEqual({ roomId, userId: users[1]!.userId, nicknameMask: '이**', memberCount: 2, changeSeq: expect.any(Number) });
  });

  it('the last member leaving brings memberCount to 0', async () => {
    const { sockets, roomId } = await scene(['김철수']);
    const [alice] = sockets as [TestSocket];
    await join(alice, roomId);
    expect(await emitAck(alice, 'leave-room', { roomId })).toEqual({ ok: true, data: { roomId, changeSeq: expect.any(Number) } });
    expect(await memberCountOverRest(roomId)).toBe(0);
  });
});

describe('typing (§5)', () => {
  it('typing-indicator {roomId, userId, nicknameMask, isTyping} to the others, never the sender; ack {ok:true, data:{}}', async () => {
    const { users, sockets, roomId } = await scene(['김철수', '이영희', '박지민']);
    const [alice, bob, carol] = sockets as [TestSocket, TestSocket, TestSocket];
    for (const socket of sockets) await join(socket, roomId);
    const aliceSaw = record(alice, 'typing-indicator');
    const bobSaw = record(bob, 'typing-indicator');
    const carolSaw = record(carol, 'typing-indicator');

    expect(await emitAck(alice, 'typing', { roomId, isTyping: true })).toEqual({ ok: true, data: {} });
    expect(await emitAck(alice, 'typing', { roomId, isTyping: false })).toEqual({ ok: true, data: {} });
    await sleep(QUIET_MS);
    const expected = [
      { roomId, userId: users[0]!.userId, nicknameMask: '김**', isTyping: true },
      { roomId, userId: users[0]!.userId, nicknameMask: '김**', isTyping: false },
    ];
    expect(bobSaw).toEqual(expected);
    expect(carolSaw).toEqual(expected);
    expect(aliceSaw).toEqual([]);
  });

  it('does not reach sockets outside the room', async () => {
    const { sockets, roomId } = await scene(['김철수', '이영희', '박지민']);
    const [alice, bob, outsider] = sockets as [TestSocket, TestSocket, TestSocket];
    await join(alice, roomId);
    await join(bob, roomId);
    const outsiderSaw = record(outsider, 'typing-indicator');
    const bobSeen = nextEvent(bob, 'typing-indicator');
    await emitAck(alice, 'typing', { roomId, isTyping: true });
    await bobSeen;
    await sleep(QUIET_MS);
    expect(outsiderSaw).toEqual([]);
  });

  it('is ignored when the socket is not in that room (never joined, or left)', async () => {
    const { sockets, roomId } = await scene(['김철수', '이영희', '박지민']);
    const [alice, bob, stranger] = sockets as [TestSocket, TestSocket, TestSocket];
    await join(alice, roomId);
    await join(bob, roomId);
    const aliceSaw = record(alice, 'typing-indicator');
    const strangerErrors = record(stranger, 'error');

    expect(await emitAck(stranger, 'typing', { roomId, isTyping: true })).toEqual({ ok: true, data: {} });
    await emitAck(bob, 'leave-room', { roomId });
    expect(await emitAck(bob, 'typing', { roomId, isTyping: true })).toEqual({ ok: true, data: {} });
    await sleep(QUIET_MS);
    expect(aliceSaw).toEqual([]);
    expect(strangerErrors).toEqual([]);
  });

  it('drops malformed typing payloads silently', async () => {
    const { sockets, roomId } = await scene(['김철수', '이영희']);
    const [alice, bob] = sockets as [TestSocket, TestSocket];
    await join(alice, roomId);
    await join(bob, roomId);
    const bobSaw = record(bob, 'typing-indicator');
    for (const payload of [{ roomId, isTyping: 'yes' }, { roomId }, { isTyping: true }, { roomId: 'nope', isTyping: true }, null]) {
      expect(await emitAck(alice, 'typing', payload)).toEqual({ ok: true, data: {} });
    }
    await sleep(QUIET_MS);
    expect(bobSaw).toEqual([]);
  });

  it('on disconnect, sends isTyping:false for every room where the socket was typing (and only those)', async () => {
    const { users, sockets, roomId } = await scene(['김철수', '이영희']);
    const [alice, bob] = sockets as [TestSocket, TestSocket];
    const quietRoom = (await createRoom(url, users[0]!)).roomId;
    const stoppedRoom = (await createRoom(url, users[0]!)).roomId;
    for (const id of [roomId, quietRoom, stoppedRoom]) {
      await join(alice, id);
      await join(bob, id);
    }
    await emitAck(alice, 'typing', { roomId, isTyping: true });
    await emitAck(alice, 'typing', { roomId: stoppedRoom, isTyping: true });
    await emitAck(alice, 'typing', { roomId: stoppedRoom, isTyping: false });
    await sleep(100);
    const bobSaw = record(bob, 'typing-indicator');
    alice.close();
    await sleep(QUIET_MS + 100);
    expect(bobSaw).toEqual([{ roomId, userId: users[0]!.userId, nicknameMask: '김**', isTyping: false }]);
  });

  it('a burst is throttled, but the isTyping:false that ends it is never dropped', async () => {
    const { users, sockets, roomId } = await scene(['김철수', '이영희']);
    const [alice, bob] = sockets as [TestSocket, TestSocket];
    await join(alice, roomId);
    await join(bob, roomId);
    const bobSaw = record(bob, 'typing-indicator');
    // A client that reports every keystroke, then stops as the user presses Enter.
    for (let i = 0; i < 12; i++) await emitAck(alice, 'typing', { roomId, isTyping: true });
    await emitAck(alice, 'typing', { roomId, isTyping: false });
    await sleep(QUIET_MS);
    // Excess `true`s were dropped (throttled)…
    expect(bobSaw.length).toBeLessThan(13);
    // …but Bob's screen must not be left showing "typing".
    expect(bobSaw.at(-1)).toEqual({ roomId, userId: users[0]!.userId, nicknameMask: '김**', isTyping: false });
  });
});
