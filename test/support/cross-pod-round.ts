import { expect } from 'vitest';
import { connect, createRoom, emitAck, makeUser, nextEvent, record, request, type TestSocket, type TestUser } from '@chat/testing';
import { withAppLogsOnFailure } from './app-logs.ts';
import type { TestCluster } from './cluster.ts';

export interface MembersOnTwoPods {
  alice: TestUser;
  bob: TestUser;
  roomId: string;
  /** Alice's socket, on the first pod. */
  socketA: TestSocket;
  /** Bob's socket, on the second pod. */
  socketB: TestSocket;
  /** Every `new-message` Bob's socket heard since both joined. */
  heardByBob: { content?: string }[];
  /** Every `user-joined` Alice's socket heard from Bob's join on. */
  joinsHeardByAlice: { roomId?: string }[];
}

/**
 * Alice on the first pod and Bob on the second, both joined to a room: the room `roomId` names
 * (created by `alice`), or a new one of Alice's.
 */
export async function membersOnTwoPods(cluster: TestCluster, options: { alice?: TestUser; roomId?: string } = {}): Promise<MembersOnTwoPods> {
  const [a, b] = cluster.pods;
  const alice = options.alice ?? (await makeUser('김철수'));
  const bob = await makeUser('이영희');
  const roomId = options.roomId ?? (await createRoom(a!.url, alice)).roomId;
  const socketA = await connect(a!.url, alice.token);
  const socketB = await connect(b!.url, bob.token);
  expect(await emitAck(socketA, 'join-room', { roomId })).toMatchObject({ ok: true });
  const joinsHeardByAlice = record(socketA, 'user-joined') as { roomId?: string }[];
  expect(await emitAck(socketB, 'join-room', { roomId })).toMatchObject({ ok: true });
  const heardByBob = record(socketB, 'new-message') as { content?: string }[];
  return { alice, bob, roomId, socketA, socketB, heardByBob, joinsHeardByAlice };
}

/**
 * The worker's queues and emitter work: a room `owner` creates now, living 2 s, expires and
 * `member`, joined to it, hears `room-expired` through the bus. The join is retried for a while
 * (the state may be failing over).
 */
export function shortRoomExpires(url: string, owner: TestUser, member: TestSocket): Promise<void> {
  return withAppLogsOnFailure(async () => {
    const shortLived = await createRoom(url, owner, { ttlSeconds: 2 });
    // Listening before the join: on a slow machine the ack and the expiry can arrive in one read.
    const expired = nextEvent(member, 'room-expired', 30_000);
    const resyncs = record(member, 'resync');
    const joined = () => emitAck(member, 'join-room', { roomId: shortLived.roomId }, 2000).then((ack) => ack.ok, () => false);
    await expect.poll(joined, { timeout: 20_000, interval: 500 }).toBe(true);
    const heard = await expired.catch((error: unknown) => {
      // What the member was told instead, if anything: a failure says it.
      if (error instanceof Error) error.message += ` (room ${shortLived.roomId}; resyncs heard: ${JSON.stringify(resyncs)})`;
      throw error;
    });
    expect(heard).toMatchObject({ roomId: shortLived.roomId });
  });
}

/**
 * What two pods and a worker must do on whatever servers a test gave them (TLS, Sentinel, …):
 * ready; two users on different pods join a room, one hears the other join and the other hear
 * the message; the history has it; the worker's BullMQ sweep expires a short room and its member
 * hears it through the bus.
 */
export async function chatsAcrossPodsAndExpiresARoom(cluster: TestCluster, content = '두 파드 사이'): Promise<void> {
  const [a, b] = cluster.pods;
  for (const pod of [a!, b!]) expect((await request(pod.url, 'GET', '/readyz')).status).toBe(200);
  const { alice, roomId, socketA, socketB, heardByBob, joinsHeardByAlice } = await membersOnTwoPods(cluster);
  await expect.poll(() => joinsHeardByAlice.map((joined) => joined.roomId)).toContain(roomId);
  expect(await emitAck(socketA, 'send-message', { roomId, type: 'text', content })).toMatchObject({ ok: true, data: { seq: 1 } });
  await expect.poll(() => heardByBob.map((message) => message.content)).toEqual([content]);
  const history = await request<{ messages: { content: string }[] }>(b!.url, 'GET', `/api/rooms/${roomId}/messages`);
  expect(history.body.messages.map((message) => message.content)).toEqual([content]);
  await shortRoomExpires(a!.url, alice, socketB);
}

/**
 * Sends `content` from `from` until `heard`, a recording of another socket's `new-message`, has
 * it live: the bus may be catching up after a failover. Each attempt is a message of its own: one
 * stored while the bus was away reaches the other pod's sockets by `resync` and history, not live
 * (and a retry of it with the same clientMessageId is answered without a second broadcast), so
 * only a later one can show the room's traffic flowing again. The history may hold it more than once.
 */
export async function deliveredAcrossPods(from: TestSocket, heard: { content?: string }[], roomId: string, content: string): Promise<void> {
  let attempt = 0;
  await expect
    .poll(
      async () => {
        if (!heard.some((message) => message.content === content)) {
          attempt += 1;
          await emitAck(from, 'send-message', { roomId, type: 'text', content, clientMessageId: `${content}#${attempt}` }, 2000).catch(() => undefined);
        }
        return heard.some((message) => message.content === content);
      },
      { timeout: 30_000, interval: 500 },
    )
    .toBe(true);
}
