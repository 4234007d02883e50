import { io } from 'socket.io-client';
import { describe, expect } from 'vitest';
import { CHAT_NAMESPACE } from '@chat/protocol';
import {
  connect,
  createRoom,
  emitAck,
  makeUser,
  nextEvent,
  record,
  request,
  sleep,
  type TestSocket,
} from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * Two pods that only meet through Redis and Postgres (PROTOCOL §2–§5 [ext] "on every pod").
 * Pod A = pods[0], pod B = pods[1].
 */

const it = clusterTest({ pods: 2 });
let A: string;
let B: string;
it.beforeAll(({ cluster }) => {
  A = cluster.pods[0]!.url;
  B = cluster.pods[1]!.url;
});

/** Cross-pod delivery goes through Redis pub/sub: give absence this long to show. */
const QUIET_MS = 300;

async function join(socket: TestSocket, roomId: string) {
  const ack = await emitAck(socket, 'join-room', { roomId });
  if (!ack.ok) throw new Error(`join failed: ${JSON.stringify(ack)}`);
  return ack.data as { roomId: string; memberCount: number };
}

async function send(socket: TestSocket, roomId: string, content: string) {
  const ack = await emitAck<{ messageId: string; seq: number }>(socket, 'send-message', { roomId, type: 'text', content });
  if (!ack.ok) throw new Error(`send failed: ${JSON.stringify(ack)}`);
  return ack.data;
}

/** A room with `alice` on pod A (joined) and `bob` on pod B (joined). */
async function twoPodRoom() {
  const alice = await makeUser('김철수');
  const bob = await makeUser('이영희');
  const { roomId } = await createRoom(A, alice);
  const aliceA = await connect(A, alice.token);
  const bobB = await connect(B, bob.token);
  await join(aliceA, roomId);
  // Bob's ack can come before his `user-joined` has crossed Redis to Alice's pod: wait for it,
  // so that a test recording Alice's events from here on sees only what it caused itself.
  const aliceSawBob = nextEvent(aliceA, 'user-joined');
  await join(bobB, roomId);
  await aliceSawBob;
  return { alice, bob, roomId, aliceA, bobB };
}

/** Resolves when `socket` receives the message with this content (ignores others). */
function messageWithContent(socket: TestSocket, content: string, timeoutMs = 3000) {
  return new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off('new-message', listener);
      reject(new Error(`no new-message "${content}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (message: { content: string | null }) => {
      if (message.content !== content) return;
      clearTimeout(timer);
      socket.off('new-message', listener);
      resolve(message);
    };
    socket.on('new-message', listener);
  });
}

describe('messages across pods', () => {
  it('a message sent on pod A reaches a member on pod B, identical to the sender’s ack', async () => {
    const { roomId, aliceA, bobB } = await twoPodRoom();
    const onB = nextEvent(bobB, 'new-message');
    const ack = await emitAck(aliceA, 'send-message', { roomId, type: 'text', content: '다른 파드로' });
    expect(ack.ok).toBe(true);
    if (!ack.ok) return;
    expect(await onB).toEqual(ack.data);
  });

  it('and the other way round, in seq order on both pods', async () => {
    const { roomId, aliceA, bobB } = await twoPodRoom();
    const onA = record(aliceA, 'new-message');
    const onB = record(bobB, 'new-message');
    // Each user answers once the other's message has reached them, as people in a chat do.
    // (Sent right after the other's ack instead, two messages from different pods may reach a
    // socket in either order: a pod delivers its own broadcasts at once and the other pod's
    // through Redis, and only within one pod's broadcasts is `seq` order promised, PROTOCOL
    // §14; a fresh-clone CI run saw a2 before b2 on pod A that way.)
    for (let i = 0; i < 3; i++) {
      const bobsReachesAlice = messageWithContent(aliceA, `b${i}`);
      await send(bobB, roomId, `b${i}`);
      await bobsReachesAlice;
      const alicesReachesBob = messageWithContent(bobB, `a${i}`);
      await send(aliceA, roomId, `a${i}`);
      await alicesReachesBob;
    }
    await sleep(QUIET_MS);
    const expected = ['b0', 'a0', 'b1', 'a1', 'b2', 'a2'];
    expect(onA.map((message) => message.content)).toEqual(expected);
    expect(onB.map((message) => message.content)).toEqual(expected);
    expect(onB.map((message) => message.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

describe('membership follows the user to every pod', () => {
  it('a second device connected on pod B after the join receives the room without joining', async () => {
    const { alice, roomId, aliceA } = await twoPodRoom();
    const aliceB = await connect(B, alice.token); // no join-room from this socket
    const onB = messageWithContent(aliceB, '두 번째 기기');
    await send(aliceA, roomId, '두 번째 기기');
    expect(await onB).toMatchObject({ roomId, content: '두 번째 기기', userId: alice.userId });
  });

  it('a device already connected on pod B is moved in by a join made on pod A', async () => {
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const { roomId } = await createRoom(A, bob);
    const bobA = await connect(A, bob.token);
    await join(bobA, roomId);
    const aliceB = await connect(B, alice.token); // before the join
    const aliceA = await connect(A, alice.token);
    await join(aliceA, roomId);
    await sleep(100); // the socketsJoin travels through Redis
    const onB = messageWithContent(aliceB, '들어왔나요');
    await send(bobA, roomId, '들어왔나요');
    expect(await onB).toMatchObject({ roomId, content: '들어왔나요' });
    // Typing from the moved-in socket is accepted too: it is in the room.
    const typingSeen = nextEvent(bobA, 'typing-indicator');
    await emitAck(aliceB, 'typing', { roomId, isTyping: true });
    expect(await typingSeen).toEqual({ roomId, userId: alice.userId, nicknameMask: '김**', isTyping: true });
  });

  it('a device on pod B can send right after a join made on pod A (membership is in the database)', async () => {
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const { roomId } = await createRoom(A, bob);
    const bobA = await connect(A, bob.token);
    await join(bobA, roomId);
    const aliceB = await connect(B, alice.token); // connected before the join
    const aliceA = await connect(A, alice.token);
    await join(aliceA, roomId);
    // No pause: pod B may not have moved aliceB in yet, the send must still be accepted.
    const onBob = messageWithContent(bobA, '바로 보내기');
    expect(await send(aliceB, roomId, '바로 보내기')).toMatchObject({ seq: 1 });
    await onBob;
  });

  it('a leave on pod A removes the user’s socket on pod B: it stops receiving the room', async () => {
    const { bob, roomId, aliceA, bobB } = await twoPodRoom();
    const bobA = await connect(A, bob.token); // Bob's other device, on pod A
    const before = messageWithContent(bobB, '아직 있어요');
    await send(aliceA, roomId, '아직 있어요');
    await before;

    const bobBSaw = record(bobB, 'new-message');
    const bobBUserLeft = record(bobB, 'user-left');
    const aliceSaw = nextEvent(aliceA, 'user-left');
    expect(await emitAck(bobA, 'leave-room', { roomId })).toEqual({ ok: true, data: { roomId, changeSeq: expect.any(Number) } });
    expect(await aliceSaw).toEqual({ roomId, userId: bob.userId, memberCount: 1, changeSeq: expect.any(Number) });
    await sleep(100);
    await send(aliceA, roomId, '이제 없어요');
    await sleep(QUIET_MS);
    expect(bobBSaw).toEqual([]);
    expect(bobBUserLeft).toEqual([]);
    // Typing from the removed socket is now ignored.
    const aliceTyping = record(aliceA, 'typing-indicator');
    await emitAck(bobB, 'typing', { roomId, isTyping: true });
    await sleep(QUIET_MS);
    expect(aliceTyping).toEqual([]);
  });

  it('the user’s other devices on the other pod are told: room-joined on a join, room-left on a leave', async () => {
    const alice = await makeUser('김철수');
    const { roomId } = await createRoom(A, alice);
    const aliceA = await connect(A, alice.token);
    const aliceB = await connect(B, alice.token);
    const joinedOnB = nextEvent(aliceB, 'room-joined');
    await join(aliceA, roomId);
    expect(await joinedOnB).toEqual({ roomId, memberCount: 1, lastChangeSeq: expect.any(Number) });
    const callerJoins = record(aliceA, 'room-joined');
    const leftOnB = nextEvent(aliceB, 'room-left');
    const callerLefts = record(aliceA, 'room-left');
    expect(await emitAck(aliceA, 'leave-room', { roomId })).toEqual({ ok: true, data: { roomId, changeSeq: expect.any(Number) } });
    const left = await leftOnB;
    expect(left).toEqual({ roomId, changeSeq: expect.any(Number) });
    await sleep(QUIET_MS);
    // The caller hears its own answer once, not a second copy through its user channel.
    expect(callerLefts).toEqual([left]);
    expect(callerJoins).toEqual([]);
  });

  it('a socket that reconnects (same pod, socket.io reconnection) is back in its rooms at connect', async () => {
    const { bob, roomId, aliceA } = await twoPodRoom();
    const socket: TestSocket = io(`${B}${CHAT_NAMESPACE}`, {
      transports: ['websocket'],
      auth: { token: bob.token },
      forceNew: true,
      reconnectionDelay: 50,
      reconnectionDelayMax: 100,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
      // The namespace's own `connect` (after the handshake middleware), not the Manager's
      // `reconnect`, which fires as soon as the transport is back.
      const reconnected = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.io.engine.close(); // the connection drops; the client reconnects by itself
      await reconnected;
      // No join-room after the reconnect.
      const onB = messageWithContent(socket, '다시 왔네요');
      await send(aliceA, roomId, '다시 왔네요');
      expect(await onB).toMatchObject({ roomId, content: '다시 왔네요' });
    } finally {
      socket.close();
    }
  });

  it('a client that reconnects to the other pod is back in its rooms at connect', async () => {
    const { bob, roomId, aliceA, bobB } = await twoPodRoom();
    bobB.close();
    const bobA = await connect(A, bob.token); // "the pod died, the LB sent me elsewhere"
    const onA = messageWithContent(bobA, '어느 파드든');
    await send(aliceA, roomId, '어느 파드든');
    expect(await onA).toMatchObject({ roomId, content: '어느 파드든' });
    // …and it can send without joining.
    const onAlice = messageWithContent(aliceA, '저도 보낼게요');
    await send(bobA, roomId, '저도 보낼게요');
    await onAlice;
  });
});

describe('room announcements and typing across pods', () => {
  it('user-joined from pod B reaches pod A, and not the joiner’s own device on pod A', async () => {
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const { roomId } = await createRoom(A, alice);
    const aliceA = await connect(A, alice.token);
    await join(aliceA, roomId);
    const bobA = await connect(A, bob.token); // Bob's other device, on pod A
    const bobB = await connect(B, bob.token);
    const bobASaw = record(bobA, 'user-joined');
    const aliceSaw = nextEvent(aliceA, 'user-joined');
    expect(await join(bobB, roomId)).toEqual({ roomId, memberCount: 2, lastChangeSeq: expect.any(Number) });
    expect(await aliceSaw).toEqual({ roomId, userId: bob.userId, nicknameMask: '이**', memberCount: 2, changeSeq: expect.any(Number) });
    await sleep(QUIET_MS);
    expect(bobASaw).toEqual([]);
  });

  it('an idempotent re-join from another pod announces nothing', async () => {
    const { bob, roomId, aliceA } = await twoPodRoom();
    const bobA = await connect(A, bob.token);
    const aliceSaw = record(aliceA, 'user-joined');
    expect(await join(bobA, roomId)).toEqual({ roomId, memberCount: 2, lastChangeSeq: expect.any(Number) });
    await sleep(QUIET_MS);
    expect(aliceSaw).toEqual([]);
    const room = await request(B, 'GET', `/api/rooms/${roomId}`);
    expect(room.body.memberCount).toBe(2);
  });

  it('two devices of one user joining at the same moment on two pods: both told the true memberCount', async () => {
    // Repeated, because it is a race: the second insert waits for the first one's commit.
    for (let round = 0; round < 6; round++) {
      const { roomId } = await twoPodRoom();
      const carol = await makeUser('박지민');
      const devices = await Promise.all([connect(A, carol.token), connect(B, carol.token)]);
      const acks = await Promise.all(devices.map((socket) => emitAck(socket, 'join-room', { roomId })));
      expect(acks).toEqual([
        { ok: true, data: { roomId, memberCount: 3, lastChangeSeq: expect.any(Number) } },
        { ok: true, data: { roomId, memberCount: 3, lastChangeSeq: expect.any(Number) } },
      ]);
      const room = await request(A, 'GET', `/api/rooms/${roomId}`);
      expect(room.body.memberCount).toBe(3);
      for (const socket of devices) socket.close();
    }
  });

  it('user-left from pod B reaches pod A', async () => {
    const { bob, roomId, aliceA, bobB } = await twoPodRoom();
    const aliceSaw = nextEvent(aliceA, 'user-left');
    expect(await emitAck(bobB, 'leave-room', { roomId })).toEqual({ ok: true, data: { roomId, changeSeq: expect.any(Number) } });
    expect(await aliceSaw).toEqual({ roomId, userId: bob.userId, memberCount: 1, changeSeq: expect.any(Number) });
  });

  it('typing crosses pods, never back to the sender nor to the sender’s other devices', async () => {
    const { alice, roomId, aliceA, bobB } = await twoPodRoom();
    const aliceB = await connect(B, alice.token); // Alice's second device, already in the room
    const aliceSaw = record(aliceA, 'typing-indicator');
    const aliceOtherSaw = record(aliceB, 'typing-indicator');
    const bobSaw = nextEvent(bobB, 'typing-indicator');
    expect(await emitAck(aliceA, 'typing', { roomId, isTyping: true })).toEqual({ ok: true, data: {} });
    expect(await bobSaw).toEqual({ roomId, userId: alice.userId, nicknameMask: '김**', isTyping: true });
    await sleep(QUIET_MS);
    expect(aliceSaw).toEqual([]);
    expect(aliceOtherSaw).toEqual([]);
  });

  it('the isTyping:false of a disconnect crosses pods', async () => {
    const { alice, roomId, aliceA, bobB } = await twoPodRoom();
    const first = nextEvent(bobB, 'typing-indicator');
    await emitAck(aliceA, 'typing', { roomId, isTyping: true });
    await first;
    const stopped = nextEvent(bobB, 'typing-indicator');
    aliceA.close();
    expect(await stopped).toEqual({ roomId, userId: alice.userId, nicknameMask: '김**', isTyping: false });
  });
});
