import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAllSockets, connect, createRoom, emitAck, makeUser, record, request, type TcpRelay } from '@chat/testing';
import { redisErrors, startRelayedPair, type TestCluster } from '../support/index.ts';

/**
 * One pod's Redis goes silent (a network partition, a Redis pod replaced behind its Service IP:
 * no reset, the old connections hear nothing) and then answers again on new connections. The pod
 * must serve again by itself, without a restart: its state commands (presence, rate limits), its
 * bus publisher and its bus subscriber each on a new connection, and what went missing meanwhile
 * resynced. Pod A reaches Redis (state and bus, the sharded adapter on REDIS_URL) through a relay
 * the test freezes; pod B directly; both share the database and the key prefix (startRelayedPair).
 */

let relay: TcpRelay;
let podA: TestCluster;
let podB: TestCluster;
let close: () => Promise<void>;

beforeAll(async () => {
  ({ relay, podA, podB, close } = await startRelayedPair('silent'));
});
afterAll(async () => {
  closeAllSockets();
  await close?.();
});

describe('a pod whose Redis goes silent, then answers on new connections', () => {
  it('fails its publishes meanwhile, then publishes, hears the bus, and keeps state again; the rooms concerned resync', { timeout: 90_000 }, async () => {
    const A = podA.pods[0]!.url;
    const B = podB.pods[0]!.url;
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const carol = await makeUser('박민수');
    const room = await createRoom(A, alice);
    const onA = await connect(A, alice.token);
    const onB = await connect(B, bob.token);
    expect((await emitAck(onA, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    expect((await emitAck(onB, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    // Carol is a member too, offline: her presence is what pod A writes once Redis is back.
    const carolFirst = await connect(A, carol.token);
    expect((await emitAck(carolFirst, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    carolFirst.disconnect();
    const carolOnline = async () => {
      const members = await request(A, 'GET', `/api/rooms/${room.roomId}/members`, { token: alice.token });
      return (members.body.members as { userId: string; online: boolean }[]).find((member) => member.userId === carol.userId)?.online;
    };
    await expect.poll(carolOnline, { timeout: 5000, interval: 100 }).toBe(false);
    const heardOnA = record(onA, 'new-message');
    const heardOnB = record(onB, 'new-message');
    const resyncOnA = record(onA, 'resync');
    const resyncOnB = record(onB, 'resync');

    relay.freeze();
    // Sending on pod A still works (Postgres is there; the rate limit falls back to memory), and
    // its publish to the bus fails in a bounded time instead of waiting on the dead connection.
    const before = await redisErrors(A, ['pub']);
    const sentWhileSilent = await emitAck(onA, 'send-message', { roomId: room.roomId, type: 'text', content: '조용한 동안' });
    expect(sentWhileSilent.ok, JSON.stringify(sentWhileSilent)).toBe(true);
    await expect.poll(() => redisErrors(A, ['pub']), { timeout: 10_000, interval: 200 }).toBeGreaterThan(before);
    expect(heardOnB).toEqual([]);

    relay.thaw();
    // Pod A publishes again: the room it broadcast to while silent is told to resync, on pod B too.
    await expect.poll(() => resyncOnB, { timeout: 30_000, interval: 200 }).toContainEqual({ roomId: room.roomId });
    // Pod A hears the bus again: its subscriptions, lost with the old connection, are made again
    // on a new one, and its sockets resync for what they missed (`{}`: the main channel's, which
    // carries the membership moves, covers every room).
    await expect.poll(() => resyncOnA, { timeout: 30_000, interval: 200 }).toContainEqual({});
    // The room's own subscription may be confirmed a moment after the main channel's: B sends
    // until A hears one (a broadcast before that is missed, as the resync says).
    let sentFromB = 0;
    await expect
      .poll(
        async () => {
          if (heardOnA.some((message) => message.content?.startsWith('B에서'))) return true;
          expect((await emitAck(onB, 'send-message', { roomId: room.roomId, type: 'text', content: `B에서 ${++sentFromB}` })).ok).toBe(true);
          return false;
        },
        { timeout: 15_000, interval: 300 },
      )
      .toBe(true);
    expect((await emitAck(onA, 'send-message', { roomId: room.roomId, type: 'text', content: 'A에서' })).ok).toBe(true);
    await expect.poll(() => heardOnB.map((message) => message.content), { timeout: 10_000, interval: 100 }).toContain('A에서');

    // Pod A's state commands work again: carol, connecting to it now, is online (her presence
    // written by pod A, read back by pod A for the member list).
    await connect(A, carol.token);
    await expect.poll(carolOnline, { timeout: 30_000, interval: 250 }).toBe(true);
  });
});
