import type { Sql } from 'postgres';
import { describe, expect } from 'vitest';
import type { AckResponse, ErrorPayload, NewMessagePayload } from '@chat/protocol';
import {
  connect,
  countMessageRows,
  createRoom,
  emitAck,
  makeUser,
  nextEvent,
  record,
  sleep,
  type TestSocket,
} from '@chat/testing';
import { clusterTest, type TestCluster } from '../support/index.ts';

/** PROTOCOL §4: 30 send-message per minute per user, across all pods (default configuration). */

const LIMIT = 30;
const RATE_LIMITED_MESSAGE = '메시지 전송 한도를 초과했습니다. 잠시 후 다시 시도해주세요';

let cluster: TestCluster;
let sql: Sql;

// No MESSAGE_RATE_LIMIT_PER_MINUTE override: the default must be the spec's 30.
const it = clusterTest({ pods: 2 });
it.beforeAll(({ cluster: started, sql: db }) => {
  cluster = started;
  sql = db;
});

/** A fresh user (fresh budget) with one joined socket per pod, plus an observer in the room. */
async function setup() {
  const [a, b] = cluster.pods;
  const user = await makeUser('김철수');
  const room = await createRoom(a!.url, user);
  const onA = await connect(a!.url, user.token);
  const onB = await connect(b!.url, user.token);
  expect((await emitAck(onA, 'join-room', { roomId: room.roomId })).ok).toBe(true);
  const observer = await connect(b!.url, (await makeUser('관찰자')).token);
  expect((await emitAck(observer, 'join-room', { roomId: room.roomId })).ok).toBe(true);
  return { user, roomId: room.roomId, sockets: [onA, onB] as const, observer };
}

const text = (roomId: string, content: string, clientMessageId?: string) => ({
  roomId,
  type: 'text',
  content,
  ...(clientMessageId === undefined ? {} : { clientMessageId }),
});

function expectLimited(ack: AckResponse<NewMessagePayload>, error?: ErrorPayload) {
  expect(ack.ok).toBe(false);
  if (ack.ok) return;
  expect(ack.error).toEqual({ message: RATE_LIMITED_MESSAGE, code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) });
  expect(ack.error.retryAfterMs).toBeGreaterThan(0);
  expect(ack.error.retryAfterMs).toBeLessThanOrEqual(60_000);
  if (error) {
    expect(error).toEqual({ message: RATE_LIMITED_MESSAGE, code: 'RATE_LIMITED', event: 'send-message', retryAfterMs: expect.any(Number) });
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.retryAfterMs).toBeLessThanOrEqual(60_000);
  }
}

async function waitFor(condition: () => boolean, ms = 2000) {
  for (let waited = 0; waited < ms && !condition(); waited += 25) await sleep(25);
}

describe('send-message rate limit', () => {
  it('allows exactly 30 per minute across two pods; #31 gets RATE_LIMITED and stores nothing', async () => {
    const { roomId, sockets, observer } = await setup();
    const broadcasts = record(observer, 'new-message');
    for (let index = 0; index < LIMIT; index++) {
      const ack = await emitAck<NewMessagePayload>(sockets[index % 2]!, 'send-message', text(roomId, `#${index + 1}`));
      expect(ack, `send #${index + 1}`).toMatchObject({ ok: true, data: { seq: index + 1 } });
    }
    for (const socket of sockets) {
      const errorEvent = nextEvent(socket, 'error');
      const ack = await emitAck<NewMessagePayload>(socket, 'send-message', text(roomId, '#31'));
      expectLimited(ack, await errorEvent);
    }
    expect(await countMessageRows(sql, roomId)).toBe(LIMIT);
    await waitFor(() => broadcasts.length >= LIMIT);
    await sleep(150);
    expect(broadcasts.map((m) => m.content)).not.toContain('#31');
    expect(broadcasts).toHaveLength(LIMIT);
  });

  it('one socket on one pod: #31 is told the rest of the minute, and a retry past the pod\'s lease is refused for the same moment', async () => {
    const { roomId, sockets } = await setup();
    const socket = sockets[0];
    const started = Date.now();
    for (let index = 0; index < LIMIT; index++) {
      const ack = await emitAck<NewMessagePayload>(socket, 'send-message', text(roomId, `#${index + 1}`));
      expect(ack.ok, `send #${index + 1}`).toBe(true);
    }
    const first = await emitAck<NewMessagePayload>(socket, 'send-message', text(roomId, '#31'));
    const refusedAt = Date.now();
    expectLimited(first);
    const retryAfterMs = first.ok ? 0 : first.error.retryAfterMs!;
    // The minute began with the first send; no unit comes back before it ends (this pod spent
    // every unit it leased, and no other pod holds any).
    expect(retryAfterMs).toBeGreaterThan(60_000 - (refusedAt - started) - 500);
    // Past MESSAGE_RATE_LEASE_MS (3 s): still refused, and told the same moment.
    await sleep(3_100);
    const again = await emitAck<NewMessagePayload>(socket, 'send-message', text(roomId, '#31 again'));
    expectLimited(again);
    const againAfterMs = again.ok ? 0 : again.error.retryAfterMs!;
    expect(Math.abs(Date.now() + againAfterMs - (refusedAt + retryAfterMs))).toBeLessThan(500);
    expect(await countMessageRows(sql, roomId)).toBe(LIMIT);
  });

  it('a burst of 45 concurrent sends on both pods: exactly 30 stored, 15 limited, seq gap-free', async () => {
    const { roomId, sockets } = await setup();
    const acks = await Promise.all(
      Array.from({ length: 45 }, (_, index) => emitAck<NewMessagePayload>(sockets[index % 2]!, 'send-message', text(roomId, `burst ${index}`))),
    );
    const accepted = acks.filter((ack) => ack.ok);
    const limited = acks.filter((ack) => !ack.ok);
    expect(accepted).toHaveLength(LIMIT);
    expect(limited).toHaveLength(15);
    for (const ack of limited) expectLimited(ack);
    const rows = await sql<{ seq: number }[]>`select seq::int as seq from messages where room_id = ${roomId} order by seq`;
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: LIMIT }, (_, i) => i + 1));
  });

  it('another user is unaffected, in the same room and on the same pods', async () => {
    const { roomId, sockets, observer } = await setup();
    for (let index = 0; index < LIMIT; index++) await emitAck(sockets[index % 2]!, 'send-message', text(roomId, `a${index}`));
    expectLimited(await emitAck<NewMessagePayload>(sockets[0], 'send-message', text(roomId, 'over')));
    // The observer (another user) still has a full budget.
    for (let index = 0; index < LIMIT; index++) {
      const ack = await emitAck<NewMessagePayload>(observer, 'send-message', text(roomId, `o${index}`));
      expect(ack.ok, `observer send #${index + 1}`).toBe(true);
    }
    expectLimited(await emitAck<NewMessagePayload>(observer, 'send-message', text(roomId, 'over')));
    expect(await countMessageRows(sql, roomId)).toBe(2 * LIMIT);
  });

  it('a rate-limited retry of an already stored message gets the original back, not an error', async () => {
    const { roomId, sockets } = await setup();
    const first = await emitAck<NewMessagePayload>(sockets[0], 'send-message', text(roomId, '첫 메시지', 'c-first'));
    expect(first.ok).toBe(true);
    for (let index = 1; index < LIMIT; index++) await emitAck(sockets[index % 2]!, 'send-message', text(roomId, `f${index}`));
    expectLimited(await emitAck<NewMessagePayload>(sockets[1], 'send-message', text(roomId, '새 것', 'c-new')));
    const retry = await emitAck<NewMessagePayload>(sockets[1], 'send-message', text(roomId, '첫 메시지', 'c-first'));
    expect(retry).toEqual(first);
    expect(await countMessageRows(sql, roomId)).toBe(LIMIT);
  });

  it('a deduplicated retry does not use up the budget', async () => {
    const { roomId, sockets } = await setup();
    const original = await emitAck<NewMessagePayload>(sockets[0], 'send-message', text(roomId, '원본', 'dup'));
    expect(original.ok).toBe(true);
    // Ten retries, alternating pods: none of them costs a send.
    for (let index = 0; index < 10; index++) {
      expect(await emitAck(sockets[index % 2]!, 'send-message', text(roomId, '원본', 'dup'))).toEqual(original);
    }
    for (let index = 1; index < LIMIT; index++) {
      const ack = await emitAck<NewMessagePayload>(sockets[index % 2]!, 'send-message', text(roomId, `n${index}`));
      expect(ack.ok, `send #${index + 1}`).toBe(true);
    }
    expectLimited(await emitAck<NewMessagePayload>(sockets[0], 'send-message', text(roomId, 'over')));
    expect(await countMessageRows(sql, roomId)).toBe(LIMIT);
  });

  it('the limit is per user, not per socket: a third socket of a limited user is limited too', async () => {
    const { user, roomId, sockets } = await setup();
    for (let index = 0; index < LIMIT; index++) await emitAck(sockets[index % 2]!, 'send-message', text(roomId, `s${index}`));
    const fresh: TestSocket = await connect(cluster.pods[1]!.url, user.token);
    const errorEvent = nextEvent(fresh, 'error');
    expectLimited(await emitAck<NewMessagePayload>(fresh, 'send-message', text(roomId, 'new socket')), await errorEvent);
  });
});
