import { describe, expect } from 'vitest';
import type { NewMessagePayload } from '@chat/protocol';
import { connect, createRoom, emitAck, makeUser, nextEvent, record, request, sleep, type TestSocket } from '@chat/testing';
import { clusterTest, podsSubscribed as subscribers, type TestCluster } from '../support/index.ts';

/**
 * More than two pods (the gateways scale out horizontally): a room whose members sit on three of four
 * pods, the fourth holding only a bystander. Every member hears every message once, in one gap-free
 * numbering; the room's bus channel is subscribed by exactly the pods that hold a member (the
 * sharded bus: a pod with no member pays nothing for the room) and follows joins and leaves;
 * history and presence agree from any pod. Runs on the standalone bus and on the Redis Cluster
 * bus (TEST_BUS=cluster).
 */
const it = clusterTest({ pods: 4 });
let cluster: TestCluster;
it.beforeAll(({ cluster: started }) => {
  cluster = started;
});
const podsSubscribed = (roomId: string) => subscribers(cluster, roomId);

/** Polls until `read` returns `want` (bus subscriptions change asynchronously); the last value. */
async function settlesTo<T>(read: () => Promise<T>, want: T, withinMs = 5000): Promise<T> {
  const deadline = Date.now() + withinMs;
  let value = await read();
  while (value !== want && Date.now() < deadline) {
    await sleep(50);
    value = await read();
  }
  return value;
}

async function join(socket: TestSocket, roomId: string) {
  const ack = await emitAck(socket, 'join-room', { roomId });
  if (!ack.ok) throw new Error(`join failed: ${JSON.stringify(ack)}`);
}

/** Resolves with the first `count` new-messages of the room that reach the socket. */
function collect(socket: TestSocket, roomId: string, count: number, withinMs = 10_000): Promise<NewMessagePayload[]> {
  return new Promise((resolve, reject) => {
    const got: NewMessagePayload[] = [];
    const timer = setTimeout(() => reject(new Error(`${got.length} of ${count} messages arrived`)), withinMs);
    socket.on('new-message', (message) => {
      if (message.roomId !== roomId) return;
      got.push(message);
      if (got.length === count) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

describe('four pods', () => {
  it('a room on three of them: one delivery each, one numbering, and only those three pods subscribed', { timeout: 60_000 }, async () => {
    const [p0, p1, p2, p3] = cluster.pods.map((pod) => pod.url) as [string, string, string, string];
    const owner = await makeUser('방장');
    const first = await makeUser('첫째');
    const second = await makeUser('둘째');
    const third = await makeUser('셋째');
    const bystander = await makeUser('구경꾼');
    const { roomId } = await createRoom(p0, owner);

    // Members on pods 0, 1 and 2 (two on pod 2); pod 3 holds only a user outside the room.
    const sockets = {
      owner: await connect(p0, owner.token),
      first: await connect(p1, first.token),
      second: await connect(p2, second.token),
      third: await connect(p2, third.token),
    };
    const bystanderSocket = await connect(p3, bystander.token);
    const bystanderHeard = record(bystanderSocket, 'new-message');
    for (const socket of Object.values(sockets)) await join(socket, roomId);
    expect(await settlesTo(() => podsSubscribed(roomId), 3)).toBe(3);

    // Everyone sends five, all at once; each member hears all twenty exactly once.
    const heard = Object.values(sockets).map((socket) => collect(socket, roomId, 20));
    const senders = Object.entries(sockets);
    await Promise.all(
      senders.map(async ([name, socket]) => {
        for (let i = 0; i < 5; i++) {
          const ack = await emitAck(socket, 'send-message', { roomId, type: 'text', content: `${name}-${i}` });
          if (!ack.ok) throw new Error(`send failed: ${JSON.stringify(ack)}`);
        }
      }),
    );
    const received = await Promise.all(heard);
    const ids = received[0]!.map((m) => m.messageId).sort();
    for (const messages of received) {
      expect(new Set(messages.map((m) => m.messageId)).size).toBe(20);
      expect(messages.map((m) => m.messageId).sort()).toEqual(ids);
      // One gap-free numbering, whichever pod wrote each message.
      expect(messages.map((m) => m.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      // Each sender's messages are numbered in the order it sent them.
      for (const [name] of senders) {
        const own = messages.filter((m) => m.content?.startsWith(`${name}-`)).sort((a, b) => a.seq - b.seq);
        expect(own.map((m) => m.content)).toEqual([0, 1, 2, 3, 4].map((i) => `${name}-${i}`));
      }
    }
    await sleep(200);
    expect(bystanderHeard).toEqual([]);

    // History from the bystander's pod: the same twenty, in seq order.
    const history = await request<{ messages: { messageId: string; seq: number }[] }>(p3, 'GET', `/api/rooms/${roomId}/messages?limit=50`);
    expect(history.status).toBe(200);
    expect(history.body.messages.map((m) => m.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(history.body.messages.map((m) => m.messageId).sort()).toEqual(ids);

    // Pod 1's only member leaves: the others hear it once, and pod 1 stops paying for the room.
    const leftSeen = [sockets.owner, sockets.second, sockets.third].map((socket) => record(socket, 'user-left'));
    expect((await emitAck(sockets.first, 'leave-room', { roomId })).ok).toBe(true);
    expect(await settlesTo(() => podsSubscribed(roomId), 2)).toBe(2);
    await sleep(200);
    for (const seen of leftSeen) expect(seen.map((e) => e.userId)).toEqual([first.userId]);

    // The bystander joins on pod 3: pod 3 subscribes, and a message sent right after the join's
    // ack reaches it (the ack waits for the subscription).
    await join(bystanderSocket, roomId);
    expect(await podsSubscribed(roomId)).toBe(3);
    const reachesPod3 = nextEvent(bystanderSocket, 'new-message', 5000);
    expect((await emitAck(sockets.owner, 'send-message', { roomId, type: 'text', content: 'after-join' })).ok).toBe(true);
    expect((await reachesPod3).content).toBe('after-join');

    // Presence across pods: the third user's only socket closes on pod 2; pods 0, 2 and 3 say so.
    const offline = [sockets.owner, sockets.second, bystanderSocket].map((socket) =>
      nextEvent(socket, 'presence', 5000).then((event) => ({ userId: event.userId, online: event.online })),
    );
    sockets.third.close();
    for (const event of await Promise.all(offline)) expect(event).toEqual({ userId: third.userId, online: false });
  });
});
