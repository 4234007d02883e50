import { expect } from 'vitest';
import { connect, createRoom, emitAck, makeUser, nextEvent, record, request, type TestSocket } from '@chat/testing';
import type { TestCluster } from './cluster.ts';

/**
 * What two pods and a worker must do on whatever servers a test gave them (TLS, Sentinel, …):
 * ready; two users on different pods join a room, one hears the other join and the other hear
 * the message; the history has it; the worker's BullMQ sweep expires a short room and its member
 * hears it through the bus.
 */
export async function chatsAcrossPodsAndExpiresARoom(cluster: TestCluster, content = '두 파드 사이'): Promise<void> {
  const [a, b] = cluster.pods;
  for (const pod of [a!, b!]) expect((await request(pod.url, 'GET', '/readyz')).status).toBe(200);
  const alice = await makeUser('김철수');
  const bob = await makeUser('이영희');
  const room = await createRoom(a!.url, alice);
  const socketA = await connect(a!.url, alice.token);
  const socketB = await connect(b!.url, bob.token);
  expect(await emitAck(socketA, 'join-room', { roomId: room.roomId })).toMatchObject({ ok: true });
  const joined = nextEvent(socketA, 'user-joined');
  expect(await emitAck(socketB, 'join-room', { roomId: room.roomId })).toMatchObject({ ok: true });
  expect(await joined).toMatchObject({ roomId: room.roomId });
  const heardByBob = record(socketB, 'new-message') as { content?: string }[];
  expect(await emitAck(socketA, 'send-message', { roomId: room.roomId, type: 'text', content })).toMatchObject({ ok: true, data: { seq: 1 } });
  await expect.poll(() => heardByBob.map((message) => message.content)).toEqual([content]);
  const history = await request<{ messages: { content: string }[] }>(b!.url, 'GET', `/api/rooms/${room.roomId}/messages`);
  expect(history.body.messages.map((message) => message.content)).toEqual([content]);

  const shortLived = await createRoom(a!.url, alice, { ttlSeconds: 2 });
  // Listening before the join: on a slow machine the ack and the expiry can arrive in one read.
  const expired = nextEvent(socketB, 'room-expired', 15_000);
  expect(await emitAck(socketB, 'join-room', { roomId: shortLived.roomId })).toMatchObject({ ok: true });
  expect(await expired).toMatchObject({ roomId: shortLived.roomId });
}

/**
 * Sends `content` from `from` (retries keep one clientMessageId, so it is stored once) until
 * `heard`, a recording of another socket's `new-message`, has it: the bus may be catching up
 * after a failover.
 */
export async function deliveredAcrossPods(from: TestSocket, heard: { content?: string }[], roomId: string, content: string): Promise<void> {
  await expect
    .poll(
      async () => {
        if (!heard.some((message) => message.content === content)) {
          await emitAck(from, 'send-message', { roomId, type: 'text', content, clientMessageId: content }, 2000).catch(() => undefined);
        }
        return heard.some((message) => message.content === content);
      },
      { timeout: 30_000, interval: 500 },
    )
    .toBe(true);
}
