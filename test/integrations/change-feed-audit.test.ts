import { createHash, randomBytes } from 'node:crypto';
import { describe, expect } from 'vitest';
import type { NewMessagePayload } from '@chat/protocol';
import { signToken } from '@chat/auth';
import { TEST_JWT_SECRET, createRoom, emitAck, makeUser, request, sleep, type TestSocket } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * PROTOCOL §16 [ext], adversarially: the change feed and the live events are one numbering.
 * Sends on two pods, deletes, joins, leaves, the server API's extend and close and the worker's
 * notices all at once: every live event a member hears is the feed's change of that number,
 * and the feed is 1…last without a gap.
 */
const KEY = `sk_${randomBytes(24).toString('hex')}`;
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');
const asBackend = { headers: { 'x-api-key': KEY } };

const it = clusterTest({
  pods: 2,
  ownDatabase: true,
  env: {
    SERVER_API_KEYS: `backend:${sha256(KEY)}`,
    MESSAGE_RATE_LIMIT_PER_MINUTE: '100000',
    MEMBERSHIP_RATE_LIMIT_PER_MINUTE: '100000',
    ROOM_OCCUPANCY_GRACE_MS: '0',
  },
});

type Change = { changeSeq: number; event: string; payload: Record<string, unknown> };

/** The whole feed after `after`, page by page (bounded): the public route, or the server API's with `asBackend`. */
async function readFeed(url: string, roomId: string, after = 0, limit = 100, auth: { token?: string; headers?: Record<string, string> } = {}): Promise<Change[]> {
  const all: Change[] = [];
  let cursor = after;
  const path = auth.headers ? `/api/server/rooms/${roomId}/changes` : `/api/rooms/${roomId}/changes`;
  for (let page = 0; page < 200; page++) {
    const result = await request(url, 'GET', `${path}?after=${cursor}&limit=${limit}`, auth);
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    all.push(...result.body.changes);
    if (!result.body.hasMore) return all;
    cursor = result.body.changes.at(-1).changeSeq;
  }
  throw new Error('feed did not end within 200 pages');
}

const FEED_EVENTS = [
  'new-message',
  'message-deleted',
  'user-joined',
  'user-left',
  'room-expiring',
  'room-expired',
  'room-lifetime-changed',
  'room-occupied',
  'room-vacated',
] as const;

/** Every change event the socket hears, in arrival order. */
function recordChanges(socket: TestSocket): Change[] {
  const heard: Change[] = [];
  socket.onAny((event: string, payload: Record<string, unknown>) => {
    if ((FEED_EVENTS as readonly string[]).includes(event)) heard.push({ event, changeSeq: payload.changeSeq as number, payload });
  });
  return heard;
}

/** Until `done()` or `ms` passed (a bound on waiting for broadcasts, not a timing assertion). */
async function until(done: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await sleep(20);
}

describe('change feed under concurrency [ext]', () => {
  it('live events and the feed are one gap-free numbering: sends on two pods, deletes, joins, leaves, extends, close, worker notices', async ({ cluster, connect, startWorker }) => {
    const [a, b] = cluster.pods;
    await startWorker({ ROOM_EXPIRING_NOTICE_SECONDS: '300' });
    const watcher1 = await makeUser('감시일');
    const watcher2 = await makeUser('감시이');
    const alice = await makeUser('앨리스');
    const bob = await makeUser('밥');
    const carol = await makeUser('캐럴');
    const dave = await makeUser('데이브');
    // Inside the notice window from the start: the worker warns it, and warns again after each extend.
    const room = await createRoom(a!.url, watcher1, { ttlSeconds: 200 });
    const { roomId } = room;
    const w1 = await connect(a!.url, watcher1.token);
    const w2 = await connect(b!.url, watcher2.token);
    const heard1 = recordChanges(w1);
    const heard2 = recordChanges(w2);
    expect((await emitAck(w1, 'join-room', { roomId })).ok).toBe(true);
    expect((await emitAck(w2, 'join-room', { roomId })).ok).toBe(true);
    const sockets = {
      alice: await connect(a!.url, alice.token),
      bob: await connect(b!.url, bob.token),
      carol: await connect(a!.url, carol.token),
      dave: await connect(b!.url, dave.token),
    };
    expect((await emitAck(sockets.alice, 'join-room', { roomId })).ok).toBe(true);
    expect((await emitAck(sockets.bob, 'join-room', { roomId })).ok).toBe(true);
    // Both watchers hear everything committed after their joins were answered (PROTOCOL §14);
    // what came before (e.g. the worker's room-occupied racing a join) is for the catch-up.
    const start = (await readFeed(a!.url, roomId, 0, 100, asBackend)).length;

    const COUNT = 30;
    const deleteStatuses: number[] = [];
    const deletedIds = new Set<string>();
    const sendAll = (socket: TestSocket, author: { token: string }, deleteOn: string, tag: string) =>
      Promise.all(
        Array.from({ length: COUNT }, async (_, index) => {
          const ack = await emitAck<NewMessagePayload>(socket, 'send-message', { roomId, type: 'text', content: `${tag} ${index}` }, 10_000);
          expect(ack.ok, JSON.stringify(ack)).toBe(true);
          if (!ack.ok || index % 3 !== 0) return;
          // Two deletes of one message at once, on both pods: one change, one 200.
          const [first, second] = await Promise.all([
            request(deleteOn, 'DELETE', `/api/messages/${ack.data.messageId}`, { token: author.token }),
            request(a!.url, 'DELETE', `/api/messages/${ack.data.messageId}`, { token: author.token }),
          ]);
          deleteStatuses.push(first.status, second.status);
          deletedIds.add(ack.data.messageId);
        }),
      );
    const toggle = async (socket: TestSocket) => {
      for (let round = 0; round < 5; round++) {
        expect((await emitAck(socket, 'join-room', { roomId })).ok).toBe(true);
        expect((await emitAck(socket, 'leave-room', { roomId })).ok).toBe(true);
      }
    };
    const extend = async () => {
      for (let round = 0; round < 3; round++) {
        const pod = round % 2 ? a! : b!;
        const result = await request(pod.url, 'POST', `/api/server/rooms/${roomId}/extend`, { ...asBackend, body: { ttlSeconds: 200 + round } });
        expect(result.status, JSON.stringify(result.body)).toBe(200);
      }
    };
    await Promise.all([
      sendAll(sockets.alice, alice, b!.url, 'A'),
      sendAll(sockets.bob, bob, a!.url, 'B'),
      toggle(sockets.carol),
      toggle(sockets.dave),
      extend(),
    ]);
    expect(deleteStatuses.filter((status) => status === 200)).toHaveLength(deletedIds.size);
    expect(deleteStatuses.filter((status) => status === 404)).toHaveLength(deletedIds.size);

    // The end of the room: closed by the server API, then the worker's room-expired.
    expect((await request(b!.url, 'POST', `/api/server/rooms/${roomId}/close`, asBackend)).status).toBe(200);
    await until(() => heard1.some((change) => change.event === 'room-expired') && heard2.some((change) => change.event === 'room-expired'), 15_000);

    // Members are purged by now: the whole feed is the server API's.
    const feed = await readFeed(b!.url, roomId, 0, 7, asBackend);
    expect(feed.map((change) => change.changeSeq)).toEqual(Array.from({ length: feed.length }, (_, i) => i + 1));
    expect(feed.at(-1)!.event).toBe('room-expired');
    // Each deleted message deleted once in the feed.
    const deletes = feed.filter((change) => change.event === 'message-deleted').map((change) => change.payload.messageId);
    expect(new Set(deletes).size).toBe(deletes.length);
    expect(new Set(deletes)).toEqual(deletedIds);
    expect(feed.filter((change) => change.event === 'new-message')).toHaveLength(2 * COUNT);
    expect(feed.filter((change) => change.event === 'room-lifetime-changed')).toHaveLength(4);

    // Live: every change after the watchers' joins, once each, as the feed has it.
    const after = (heard: Change[]) => heard.filter((change) => change.changeSeq > start);
    await until(() => after(heard1).length >= feed.length - start && after(heard2).length >= feed.length - start, 10_000);
    const asFeedShows = (change: Change): Change => {
      if (change.event !== 'new-message' || !deletedIds.has(change.payload.messageId as string)) return change;
      return { ...change, payload: { ...change.payload, content: null, imageUrl: null } };
    };
    for (const heard of [heard1, heard2]) {
      expect(after(heard).map((change) => change.changeSeq).sort((x, y) => x - y)).toEqual(feed.slice(start).map((change) => change.changeSeq));
      for (const change of heard) {
        const stored = feed[change.changeSeq - 1]!;
        expect({ event: stored.event, payload: stored.payload }, `changeSeq ${change.changeSeq}`).toEqual({
          event: change.event,
          payload: asFeedShows(change).payload,
        });
      }
    }
  }, 120_000);
});

describe('change feed cursor [ext]', () => {
  it('takes any non-negative integer as `after`: leading zeros, and values past the last change however long, never 400 nor 500', async ({ url, connect }) => {
    const owner = await makeUser('커서');
    const room = await createRoom(url, owner);
    const socket = await connect(url, owner.token);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    expect((await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '하나' })).ok).toBe(true);
    const page = (query: string) => request(url, 'GET', `/api/rooms/${room.roomId}/changes?${query}`, { token: owner.token });

    const fromOne = await page('after=1');
    expect(fromOne.body.changes.map((change: Change) => change.changeSeq)).toEqual([2]);
    expect(await page('after=0000000000000000001')).toEqual(fromOne);
    for (const after of ['2', '999999999999999', '9999999999999999', '9007199254740993', '18446744073709551616', '9'.repeat(400)]) {
      expect(await page(`after=${after}`), after).toEqual({ status: 200, body: { changes: [], hasMore: false } });
    }
    // Not a non-negative integer: 400 INVALID_REQUEST, as before.
    for (const after of ['-1', '1.5', '1e3', '', '+1', '0x10', 'abc', '%201']) {
      expect((await page(`after=${after}`)).body, after).toMatchObject({ statusCode: 400, code: 'INVALID_REQUEST' });
    }
  });
});

describe('membership changes at the same instant [ext]', () => {
  it('one user joining and leaving one room from two pods at once: every answer is a protocol answer, the feed stays gap-free and counts right', async ({ cluster, sql, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('주인');
    const twin = await makeUser('쌍둥이');
    const room = await createRoom(a!.url, owner);
    const { roomId } = room;
    const onA = await connect(a!.url, twin.token);
    const onB = await connect(b!.url, twin.token);
    const codes = new Set<string>();
    for (let round = 0; round < 20; round++) {
      const answers = await Promise.all([
        emitAck(onA, 'join-room', { roomId }, 10_000),
        emitAck(onB, 'leave-room', { roomId }, 10_000),
        emitAck(onB, 'join-room', { roomId }, 10_000),
        emitAck(onA, 'leave-room', { roomId }, 10_000),
      ]);
      for (const answer of answers) codes.add(answer.ok ? 'ok' : (answer as { error: { code: string } }).error.code);
    }
    // Only what the protocol answers a join or leave with: no UNAVAILABLE (a deadlock) nor INTERNAL.
    expect([...codes].filter((code) => !['ok', 'NOT_A_MEMBER_LEAVE'].includes(code))).toEqual([]);

    const feed = await readFeed(a!.url, roomId, 0, 100, asBackend);
    expect(feed.map((change) => change.changeSeq)).toEqual(Array.from({ length: feed.length }, (_, i) => i + 1));
    // Joins and leaves alternate, each with the count the room then had.
    let members = 0;
    for (const change of feed) {
      members += change.event === 'user-joined' ? 1 : change.event === 'user-left' ? -1 : 0;
      if (change.event === 'user-joined' || change.event === 'user-left') expect(change.payload.memberCount).toBe(members);
      expect(members === 0 || members === 1).toBe(true);
    }
    const [stored] = await sql<{ member_count: number; members: number }[]>`
      select member_count, (select count(*)::int from room_members where room_id = ${roomId}) as members from rooms where id = ${roomId}`;
    expect(stored!.member_count).toBe(members);
    expect(stored!.members).toBe(members);
  }, 60_000);
});

describe('change feed payloads [ext]', () => {
  it('masks a user\'s nickname as stored now, as history does (PROTOCOL §16), not as the live event carried it', async ({ url, connect }) => {
    const owner = await makeUser('김철수');
    const room = await createRoom(url, owner);
    const before = await connect(url, owner.token);
    expect((await emitAck(before, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    const sent = await emitAck<NewMessagePayload>(before, 'send-message', { roomId: room.roomId, type: 'text', content: '안녕' });
    expect(sent.ok && sent.data.nicknameMask).toBe('김**');
    before.close();
    // The same user with a token bearing another nickname: the stored user takes it.
    const { token } = await signToken({ secret: TEST_JWT_SECRET, userId: owner.userId, nickname: '박' });
    await connect(url, token);
    const feed = await request(url, 'GET', `/api/rooms/${room.roomId}/changes`, { token });
    expect(feed.body.changes.map((change: Change) => [change.event, change.payload.nicknameMask])).toEqual([
      ['user-joined', '*'],
      ['new-message', '*'],
    ]);
    const history = await request(url, 'GET', `/api/rooms/${room.roomId}/messages`);
    expect(history.body.messages[0]).toMatchObject({ nickname: '박', nicknameMask: '*' });
  });
});
