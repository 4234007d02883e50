import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAllSockets, connect, createRoom, emitAck, makeUser, record, request, sleep, type TcpRelay } from '@chat/testing';
import { redisErrors, startRelayedPair, type TestCluster } from '../support/index.ts';

/**
 * One pod loses its connection to Redis while the others keep theirs. Its broadcasts reach
 * only its own sockets meanwhile; its publisher does not hold them for later (each publish
 * fails), and no other pod has any reason to tell its sockets to catch up. Pod A reaches Redis through a relay the test cuts; pod B
 * directly; both share the database and the key prefix (startRelayedPair). The bus is on
 * REDIS_URL whatever the run's TEST_BUS: the relay is what cuts pod A off it (a cluster bus's
 * master going away is the fault suite's scenario 7).
 */

let relay: TcpRelay;
let podA: TestCluster;
let podB: TestCluster;
let close: () => Promise<void>;

beforeAll(async () => {
  ({ relay, podA, podB, close } = await startRelayedPair('gap'));
});
afterAll(async () => {
  closeAllSockets();
  await close?.();
});

describe('a pod cut off from Redis, the others not', () => {
  it('tells the rooms it broadcast to meanwhile, on every pod, to resync once it is back', { timeout: 60_000 }, async () => {
    const A = podA.pods[0]!.url;
    const B = podB.pods[0]!.url;
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const busy = await createRoom(A, alice);
    const quiet = await createRoom(A, alice);
    const onA = await connect(A, alice.token);
    const onB = await connect(B, bob.token);
    for (const { roomId } of [busy, quiet]) {
      expect((await emitAck(onA, 'join-room', { roomId })).ok).toBe(true);
      expect((await emitAck(onB, 'join-room', { roomId })).ok).toBe(true);
    }
    const resyncs = record(onB, 'resync');

    // Until pod A itself sees Redis gone: its bus clients' reconnection attempts fail.
    const busErrors = () => redisErrors(A, ['pub', 'sub']);
    const before = await busErrors();
    await relay.cut();
    await expect.poll(busErrors, { timeout: 5000, interval: 50 }).toBeGreaterThan(before);

    // Sending still works on pod A (Postgres is there; the rate limit falls back to memory),
    // and pod A's own members hear it at once: local delivery does not wait for the bus.
    const onPodA = record(onA, 'new-message');
    const sent = await emitAck<{ messageId: string; seq: number }>(onA, 'send-message', { roomId: busy.roomId, type: 'text', content: '안녕' });
    expect(sent.ok).toBe(true);
    await sleep(500);
    expect(onPodA.map((message) => message.content)).toEqual(['안녕']);
    expect(resyncs).toEqual([]);

    await relay.restore();
    const backBy = Date.now() + 15_000;
    while (resyncs.length === 0 && Date.now() < backBy) await sleep(50);
    await sleep(300);
    // Only the room that had a broadcast while pod A was away, and once.
    expect(resyncs).toEqual([{ roomId: busy.roomId }]);

    // What the resync asks for: the message is there to fetch.
    const history = await request(B, 'GET', `/api/rooms/${busy.roomId}/messages`, { token: bob.token });
    expect(history.body.messages.map((m: { content: string }) => m.content)).toContain('안녕');
  });
});
