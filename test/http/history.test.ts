import type { Sql } from 'postgres';
import { beforeAll, describe, expect } from 'vitest';
import type { HistoryMessage, NewMessagePayload } from '@chat/protocol';
import {
  connect,
  createRoom,
  emitAck,
  makeUser,
  record,
  request,
  sleep,
  type TestSocket,
  type TestUser,
} from '@chat/testing';
import { clusterTest, type TestCluster } from '../support/index.ts';

/**
 * History under volume (PROTOCOL §4 [ext] seq, §7 before/after): 260 messages sent
 * concurrently by five users through both pods, read back page by page in both directions.
 */

const USERS = 5;
const PER_USER = 52;
const TOTAL = USERS * PER_USER;

const it = clusterTest({ pods: 2, env: { MESSAGE_RATE_LIMIT_PER_MINUTE: '100000' } });
let cluster: TestCluster;
let sql: Sql;
let roomId: string;
let authors: { user: TestUser; socket: TestSocket }[];
/** Every acknowledged message, by seq. */
const bySeq = new Map<number, NewMessagePayload>();
let observed: NewMessagePayload[];

it.beforeAll(async ({ cluster: started, sql: db }) => {
  cluster = started;
  sql = db;
  const [a, b] = cluster.pods;
  const owner = await makeUser('방장');
  roomId = (await createRoom(a!.url, owner)).roomId;
  authors = [];
  for (let index = 0; index < USERS; index++) {
    const user = await makeUser(`작성자${index}`);
    const socket = await connect((index % 2 === 0 ? a : b)!.url, user.token);
    expect((await emitAck(socket, 'join-room', { roomId })).ok).toBe(true);
    authors.push({ user, socket });
  }
  const observer = await connect(b!.url, owner.token);
  await emitAck(observer, 'join-room', { roomId });
  observed = record(observer, 'new-message');

  // Five senders at once, each in order: batches mix users and pods.
  await Promise.all(
    authors.map(async ({ socket }, index) => {
      let lastSeq = 0;
      for (let k = 0; k < PER_USER; k++) {
        const ack = await emitAck<NewMessagePayload>(socket, 'send-message', { roomId, type: 'text', content: `u${index}-${k}` });
        if (!ack.ok) throw new Error(JSON.stringify(ack.error));
        // One sender's messages are numbered in the order it sent them.
        expect(ack.data.seq).toBeGreaterThan(lastSeq);
        lastSeq = ack.data.seq;
        bySeq.set(ack.data.seq, ack.data);
      }
    }),
  );
}, 60_000);

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function page(pod: string, query: string) {
  const result = await request<{ messages: HistoryMessage[]; hasMore: boolean }>(pod, 'GET', `/api/rooms/${roomId}/messages?${query}`);
  expect(result.status, query).toBe(200);
  return result.body;
}

/** Walks `before` from the newest message down; checks hasMore on every page. */
async function walkBefore(limit: number): Promise<HistoryMessage[]> {
  const all: HistoryMessage[] = [];
  let cursor: string | undefined;
  for (let step = 0; step < 1000; step++) {
    const pod = cluster.pods[step % 2]!.url;
    const body = await page(pod, `limit=${limit}${cursor ? `&before=${cursor}` : ''}`);
    all.push(...body.messages);
    if (!body.hasMore) return all;
    expect(body.messages).toHaveLength(limit);
    cursor = body.messages.at(-1)!.messageId;
  }
  throw new Error('before paging did not end');
}

/** Walks `after` from `start` up; checks hasMore on every page. */
async function walkAfter(start: string, limit: number): Promise<HistoryMessage[]> {
  const all: HistoryMessage[] = [];
  let cursor = start;
  for (let step = 0; step < 1000; step++) {
    const pod = cluster.pods[step % 2]!.url;
    const body = await page(pod, `limit=${limit}&after=${cursor}`);
    all.push(...body.messages);
    if (!body.hasMore) return all;
    expect(body.messages).toHaveLength(limit);
    cursor = body.messages.at(-1)!.messageId;
  }
  throw new Error('after paging did not end');
}

/** What history must say about the message numbered `seq`. */
function expected(seq: number) {
  const sent = bySeq.get(seq)!;
  const index = Number(/^u(\d+)-/.exec(sent.content ?? '')![1]);
  return {
    messageId: sent.messageId,
    roomId,
    seq,
    userId: sent.userId,
    nickname: `작성자${index}`,
    nicknameMask: '작***',
    type: 'text',
    content: sent.content,
    imageUrl: null,
    createdAt: sent.createdAt,
  };
}

describe('history of 260 messages', () => {
  it('seq is exactly 1..260: gap-free, unique, as stored', async () => {
    expect([...bySeq.keys()].sort((x, y) => x - y)).toEqual(range(1, TOTAL));
    const rows = await sql<{ seq: number }[]>`select seq::int as seq from messages where room_id = ${roomId} order by seq`;
    expect(rows.map((row) => row.seq)).toEqual(range(1, TOTAL));
  });

  it('an observer on the other pod received every new-message once', async () => {
    for (let wait = 0; wait < 50 && observed.length < TOTAL; wait++) await sleep(50);
    expect(observed.map((m) => m.seq).sort((x, y) => x - y)).toEqual(range(1, TOTAL));
    for (const message of observed) expect(message).toEqual(bySeq.get(message.seq));
  });

  it.each([50, 37, 100, 1])('before paging (limit %i) returns every message newest first, exactly', async (limit) => {
    if (limit === 1) {
      // A single-step walk over the newest 30 is enough to pin the limit-1 edge.
      const body = await page(cluster.pods[0]!.url, 'limit=1');
      expect(body).toEqual({ messages: [expected(TOTAL)], hasMore: true });
      const oldest = await page(cluster.pods[1]!.url, `limit=1&before=${bySeq.get(2)!.messageId}`);
      expect(oldest).toEqual({ messages: [expected(1)], hasMore: false });
      return;
    }
    const all = await walkBefore(limit);
    expect(all.map((m) => m.seq)).toEqual(range(1, TOTAL).reverse());
    expect(all).toEqual(range(1, TOTAL).reverse().map(expected));
  });

  it.each([100, 41])('after paging (limit %i) from the first message catches up oldest first, exactly', async (limit) => {
    const all = await walkAfter(bySeq.get(1)!.messageId, limit);
    expect(all.map((m) => m.seq)).toEqual(range(2, TOTAL));
    expect(all).toEqual(range(2, TOTAL).map(expected));
  });

  it('after from the middle returns the tail; the newest message has nothing after it', async () => {
    const tail = await walkAfter(bySeq.get(200)!.messageId, 25);
    expect(tail.map((m) => m.seq)).toEqual(range(201, TOTAL));
    expect(await page(cluster.pods[0]!.url, `after=${bySeq.get(TOTAL)!.messageId}`)).toEqual({ messages: [], hasMore: false });
  });

  describe('with deleted messages mixed in', () => {
    const deleted = new Set<number>();

    beforeAll(async () => {
      // The oldest, the newest, every seventh and a run of ten in the middle.
      for (const seq of [1, TOTAL, ...range(1, TOTAL).filter((s) => s % 7 === 0), ...range(120, 129)]) deleted.add(seq);
      for (const seq of deleted) {
        const message = bySeq.get(seq)!;
        const author = authors.find((a) => a.user.userId === message.userId)!;
        const result = await request(cluster.pods[seq % 2]!.url, 'DELETE', `/api/messages/${message.messageId}`, { token: author.user.token });
        expect(result.status).toBe(200);
      }
    });

    const live = () => range(1, TOTAL).filter((seq) => !deleted.has(seq));

    it('before paging skips exactly the deleted ones and never returns a short page with hasMore', async () => {
      for (const limit of [50, 9]) {
        const all = await walkBefore(limit);
        expect(all.map((m) => m.seq)).toEqual(live().reverse());
        expect(all).toEqual(live().reverse().map(expected));
      }
    });

    it('after paging from a deleted first message catches up over the live ones', async () => {
      const all = await walkAfter(bySeq.get(1)!.messageId, 33);
      expect(all.map((m) => m.seq)).toEqual(live());
    });

    it('a deleted message is still a valid cursor both ways', async () => {
      const below = await page(cluster.pods[0]!.url, `limit=3&before=${bySeq.get(125)!.messageId}`);
      expect(below.messages.map((m) => m.seq)).toEqual([118, 117, 116]); // 119 = 7 × 17 is deleted
      expect(below.hasMore).toBe(true);
      const above = await page(cluster.pods[1]!.url, `limit=3&after=${bySeq.get(125)!.messageId}`);
      expect(above.messages.map((m) => m.seq)).toEqual([130, 131, 132]);
      // Nothing live after the deleted newest message.
      expect(await page(cluster.pods[1]!.url, `after=${bySeq.get(TOTAL - 1)!.messageId}`)).toEqual({ messages: [], hasMore: false });
    });

    it('the deleted rows are still stored, flagged', async () => {
      const rows = await sql<{ seq: number; is_deleted: boolean }[]>`
        select seq::int as seq, is_deleted from messages where room_id = ${roomId} order by seq`;
      expect(rows).toHaveLength(TOTAL);
      expect(rows.filter((row) => row.is_deleted).map((row) => row.seq)).toEqual([...deleted].sort((x, y) => x - y));
    });

    it('a new message continues the numbering after the deleted newest one', async () => {
      const ack = await emitAck<NewMessagePayload>(authors[0]!.socket, 'send-message', { roomId, type: 'text', content: 'u0-last' });
      expect(ack).toMatchObject({ ok: true, data: { seq: TOTAL + 1 } });
      const top = await page(cluster.pods[1]!.url, 'limit=2');
      expect(top.messages.map((m) => m.seq)).toEqual([TOTAL + 1, TOTAL - 2]); // 259 = 7 × 37 is deleted
    });
  });
});
