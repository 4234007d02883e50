import type { Sql } from 'postgres';
import { describe, expect } from 'vitest';
import type { AckResponse, NewMessagePayload } from '@chat/protocol';
import {
  connect,
  countMessageRows,
  createRoom,
  emitAck,
  makeUser,
  nextEvent,
  record,
  recordFor,
  sleep,
  type TestSocket,
  type TestUser,
} from '@chat/testing';
import { clusterTest, type TestCluster } from '../support/index.ts';

/** PROTOCOL §4 [ext]: idempotent sends keyed by (userId, clientMessageId). */

const INVALID_CLIENT_MESSAGE_ID = { message: 'clientMessageId는 1~64자의 문자열이어야 합니다', code: 'INVALID_CLIENT_MESSAGE_ID' };

let cluster: TestCluster;
let sql: Sql;

const it = clusterTest({ pods: 2, env: { MESSAGE_RATE_LIMIT_PER_MINUTE: '100000' } });
it.beforeAll(({ cluster: started, sql: db }) => {
  cluster = started;
  sql = db;
});

/** A room with `user` joined through one socket on each pod, and an observer on pod B. */
async function setup(user?: TestUser) {
  const [a, b] = cluster.pods;
  const author = user ?? (await makeUser('김철수'));
  const room = await createRoom(a!.url, author);
  const onA = await connect(a!.url, author.token);
  const onB = await connect(b!.url, author.token);
  expect((await emitAck(onA, 'join-room', { roomId: room.roomId })).ok).toBe(true);
  const observerUser = await makeUser('관찰자');
  const observer = await connect(b!.url, observerUser.token);
  expect((await emitAck(observer, 'join-room', { roomId: room.roomId })).ok).toBe(true);
  // The B socket of the author is in the room through the cross-pod membership mirror.
  return { author, roomId: room.roomId, onA, onB, observer };
}

function sendAck(socket: TestSocket, payload: Record<string, unknown>) {
  return emitAck<NewMessagePayload>(socket, 'send-message', payload);
}

async function seqs(roomId: string): Promise<number[]> {
  const rows = await sql<{ seq: number }[]>`select seq::int as seq from messages where room_id = ${roomId} order by seq`;
  return rows.map((row) => row.seq);
}

describe('clientMessageId', () => {
  it('a retry stores nothing new, acks the original and broadcasts nothing', async () => {
    const { roomId, onA, onB, observer } = await setup();
    const seen = record(observer, 'new-message');
    const first = await sendAck(onA, { roomId, type: 'text', content: '한 번만', clientMessageId: 'retry-1' });
    expect(first).toMatchObject({ ok: true, data: { seq: 1, content: '한 번만', clientMessageId: 'retry-1' } });
    // The retry may come from another device of the same user, on another pod.
    const retryA = await sendAck(onA, { roomId, type: 'text', content: '한 번만', clientMessageId: 'retry-1' });
    const retryB = await sendAck(onB, { roomId, type: 'text', content: '한 번만', clientMessageId: 'retry-1' });
    expect(retryA).toEqual(first);
    expect(retryB).toEqual(first);
    expect(await countMessageRows(sql, roomId)).toBe(1);
    await sleep(200);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toEqual(first.ok ? first.data : null);
  });

  it('the retry returns the original even if its body differs', async () => {
    const { roomId, onA } = await setup();
    const first = await sendAck(onA, { roomId, type: 'text', content: '원본', clientMessageId: 'same-key' });
    const changed = await sendAck(onA, { roomId, type: 'emoji', content: '😀', clientMessageId: 'same-key' });
    expect(changed).toEqual(first);
    expect(changed).toMatchObject({ ok: true, data: { type: 'text', content: '원본' } });
    expect(await countMessageRows(sql, roomId)).toBe(1);
  });

  it('a different clientMessageId, or none, stores again', async () => {
    const { roomId, onA } = await setup();
    const one = await sendAck(onA, { roomId, type: 'text', content: '같은 내용', clientMessageId: 'k-1' });
    const two = await sendAck(onA, { roomId, type: 'text', content: '같은 내용', clientMessageId: 'k-2' });
    const three = await sendAck(onA, { roomId, type: 'text', content: '같은 내용' });
    const four = await sendAck(onA, { roomId, type: 'text', content: '같은 내용', clientMessageId: null });
    const acks = [one, two, three, four].map((ack) => (ack.ok ? ack.data : null));
    expect(acks.map((m) => m?.seq)).toEqual([1, 2, 3, 4]);
    expect(acks.map((m) => m?.clientMessageId)).toEqual(['k-1', 'k-2', null, null]);
    expect(new Set(acks.map((m) => m?.messageId)).size).toBe(4);
    expect(await countMessageRows(sql, roomId)).toBe(4);
  });

  it('is scoped per user: two users may use the same clientMessageId', async () => {
    const { roomId, onA, observer } = await setup();
    const mine = await sendAck(onA, { roomId, type: 'text', content: '내 것', clientMessageId: 'shared' });
    const theirs = await sendAck(observer, { roomId, type: 'text', content: '남의 것', clientMessageId: 'shared' });
    expect(mine.ok && theirs.ok).toBe(true);
    if (mine.ok && theirs.ok) {
      expect(theirs.data.messageId).not.toBe(mine.data.messageId);
      expect(theirs.data.content).toBe('남의 것');
    }
    expect(await seqs(roomId)).toEqual([1, 2]);
  });

  it('concurrent retries from both pods store once and ack the same message', async () => {
    const { roomId, onA, onB, observer } = await setup();
    const seen = record(observer, 'new-message');
    for (let round = 0; round < 10; round++) {
      const payload = { roomId, type: 'text', content: `동시 ${round}`, clientMessageId: `race-${round}` };
      const acks = await Promise.all([sendAck(onA, payload), sendAck(onB, payload), sendAck(onA, payload), sendAck(onB, payload)]);
      for (const ack of acks) expect(ack).toEqual(acks[0]);
      expect(acks[0]).toMatchObject({ ok: true, data: { seq: round + 1, content: `동시 ${round}` } });
    }
    expect(await seqs(roomId)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    await sleep(200);
    expect(seen.map((m) => m.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  });

  it('seq stays gap-free when retries and new messages interleave in one batch', async () => {
    const { roomId, onA, onB } = await setup();
    const original = await sendAck(onA, { roomId, type: 'text', content: '원본', clientMessageId: 'orig' });
    expect(original).toMatchObject({ ok: true, data: { seq: 1 } });
    // Fired together, so they share group-commit batches: retries must not take a number.
    const burst = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        index % 2 === 0
          ? sendAck(index % 4 === 0 ? onA : onB, { roomId, type: 'text', content: '원본', clientMessageId: 'orig' })
          : sendAck(index % 4 === 1 ? onA : onB, { roomId, type: 'text', content: `새 ${index}`, clientMessageId: `new-${index}` }),
      ),
    );
    burst.forEach((ack, index) => {
      if (index % 2 === 0) expect(ack).toEqual(original);
      else expect(ack).toMatchObject({ ok: true, data: { content: `새 ${index}` } });
    });
    const newSeqs = burst.filter((_, index) => index % 2 === 1).map((ack) => (ack.ok ? ack.data.seq : -1));
    expect(newSeqs.sort((x, y) => x - y)).toEqual(Array.from({ length: 10 }, (_, i) => i + 2));
    expect(await seqs(roomId)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
    // The next message takes the very next number.
    expect(await sendAck(onB, { roomId, type: 'text', content: '다음' })).toMatchObject({ ok: true, data: { seq: 12 } });
  });

  it('duplicates inside one burst on one socket collapse to one row', async () => {
    const { roomId, onA } = await setup();
    const acks = await Promise.all(
      Array.from({ length: 8 }, () => sendAck(onA, { roomId, type: 'text', content: '연타', clientMessageId: 'double-click' })),
    );
    for (const ack of acks) expect(ack).toEqual(acks[0]);
    expect(await seqs(roomId)).toEqual([1]);
  });

  it('the same (user, clientMessageId) in another room stores nothing new and returns the original', async () => {
    // PROTOCOL §4 keys idempotency by (userId, clientMessageId), whatever the room.
    const { author, roomId, onA } = await setup();
    const other = await setup(author);
    const first = await sendAck(onA, { roomId, type: 'text', content: '첫 방', clientMessageId: 'cross-room' });
    const again = await sendAck(other.onA, { roomId: other.roomId, type: 'text', content: '둘째 방', clientMessageId: 'cross-room' });
    expect(again).toEqual(first);
    expect(await countMessageRows(sql, other.roomId)).toBe(0);
    expect(await countMessageRows(sql, roomId)).toBe(1);
  });

  it('accepts 64 characters; rejects more, empty, and non-strings with INVALID_CLIENT_MESSAGE_ID, storing nothing', async () => {
    const { roomId, onA, observer } = await setup();
    const accepted = record(observer, 'new-message');
    const ok = await sendAck(onA, { roomId, type: 'text', content: '경계', clientMessageId: 'x'.repeat(64) });
    expect(ok).toMatchObject({ ok: true, data: { clientMessageId: 'x'.repeat(64) } });
    const korean64 = await sendAck(onA, { roomId, type: 'text', content: '한글 키', clientMessageId: '가'.repeat(64) });
    expect(korean64).toMatchObject({ ok: true, data: { clientMessageId: '가'.repeat(64) } });
    // Characters are code points (§0): 64 emoji are 64 characters, though 128 UTF-16 units.
    const emoji64 = await sendAck(onA, { roomId, type: 'text', content: '이모지 키', clientMessageId: '😀'.repeat(64) });
    expect(emoji64).toMatchObject({ ok: true, data: { clientMessageId: '😀'.repeat(64) } });

    // The accepted messages reached the observer before the hostile ones start.
    for (let wait = 0; wait < 40 && accepted.length < 3; wait++) await sleep(25);
    expect(accepted.map((m) => m.seq)).toEqual([1, 2, 3]);

    const bad: unknown[] = ['x'.repeat(65), '😀'.repeat(65), 'x'.repeat(10_000), '', 42, 0, true, false, {}, { id: 'a' }, ['a'], 'a\u0000b'];
    const broadcasts = record(observer, 'new-message');
    for (const clientMessageId of bad) {
      const errorEvent = nextEvent(onA, 'error');
      const ack = await sendAck(onA, { roomId, type: 'text', content: '거부', clientMessageId });
      expect(ack, JSON.stringify(clientMessageId)).toEqual({ ok: false, error: INVALID_CLIENT_MESSAGE_ID });
      expect(await errorEvent).toEqual({ ...INVALID_CLIENT_MESSAGE_ID, event: 'send-message' });
    }
    expect(await countMessageRows(sql, roomId)).toBe(3);
    expect(await recordFor(observer, ['new-message'], 150)).toEqual([]);
    expect(broadcasts).toEqual([]);
    // The numbering did not move.
    expect(await sendAck(onA, { roomId, type: 'text', content: '다음' })).toMatchObject({ ok: true, data: { seq: 4 } });
  });

  it('acknowledges a retry as { ok: true, data } with exactly the new-message fields', async () => {
    const { roomId, onA, author } = await setup();
    const retry = async (): Promise<AckResponse<NewMessagePayload>> =>
      sendAck(onA, { roomId, type: 'image', imageUrl: 'https://cdn.example/a.png', clientMessageId: 'img-1' });
    const first = await retry();
    const second = await retry();
    expect(second).toEqual(first);
    if (!second.ok) throw new Error('not ok');
    expect(Object.keys(second.data).sort()).toEqual(
      ['changeSeq', 'clientMessageId', 'content', 'createdAt', 'imageUrl', 'messageId', 'nicknameMask', 'roomId', 'seq', 'type', 'userId'].sort(),
    );
    expect(second.data).toMatchObject({ userId: author.userId, nicknameMask: '김**', type: 'image', content: null, imageUrl: 'https://cdn.example/a.png' });
  });
});
