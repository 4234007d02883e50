import { randomUUID } from 'node:crypto';
import type { Sql } from 'postgres';
import { describe, expect } from 'vitest';
import type { NewMessagePayload } from '@chat/protocol';
import {
  connect,
  createRoom,
  emitAck,
  makeUser,
  nextEvent,
  record,
  recordFor,
  request,
  sleep,
  type TestSocket,
  type TestUser,
} from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/** PROTOCOL §7 (history) and §8 (delete). */

const errorBody = (statusCode: number, error: string, message: string, code: string) => ({ statusCode, error, message, code });
const UNAUTHORIZED = errorBody(401, 'Unauthorized', '인증이 필요합니다', 'UNAUTHORIZED');
const ROOM_NOT_FOUND = errorBody(404, 'Not Found', '방을 찾을 수 없습니다', 'ROOM_NOT_FOUND');
const ROOM_EXPIRED = errorBody(410, 'Gone', '만료된 방입니다', 'ROOM_EXPIRED');
const LIMIT_TOO_LARGE = errorBody(400, 'Bad Request', 'limit은 100을 초과할 수 없습니다', 'LIMIT_TOO_LARGE');
const INVALID_LIMIT = errorBody(400, 'Bad Request', 'limit은 1 이상의 정수여야 합니다', 'INVALID_LIMIT');
const BEFORE_NOT_FOUND = errorBody(400, 'Bad Request', 'before 메시지를 찾을 수 없습니다', 'BEFORE_NOT_FOUND');
const MESSAGE_NOT_FOUND = errorBody(404, 'Not Found', '메시지를 찾을 수 없습니다', 'MESSAGE_NOT_FOUND');
const NOT_OWNER = errorBody(403, 'Forbidden', '본인의 메시지만 삭제할 수 있습니다', 'NOT_MESSAGE_OWNER');

const HISTORY_KEYS = ['content', 'createdAt', 'imageUrl', 'messageId', 'nickname', 'nicknameMask', 'roomId', 'seq', 'type', 'userId'];

let podA: string;
let podB: string;

const it = clusterTest({ pods: 2, env: { MESSAGE_RATE_LIMIT_PER_MINUTE: '100000' } });
let sql: Sql;
it.beforeAll(({ cluster, sql: db }) => {
  podA = cluster.pods[0]!.url;
  podB = cluster.pods[1]!.url;
  sql = db;
});

async function send(socket: TestSocket, payload: Record<string, unknown>): Promise<NewMessagePayload> {
  const ack = await emitAck<NewMessagePayload>(socket, 'send-message', payload);
  if (!ack.ok) throw new Error(`send failed: ${JSON.stringify(ack.error)}`);
  return ack.data;
}

/** A user with a socket joined to a fresh room. */
async function roomWithMember(nickname = '김철수', pod = podA, ttlSeconds?: number) {
  const user = await makeUser(nickname);
  const room = await createRoom(pod, user, ttlSeconds === undefined ? {} : { ttlSeconds });
  const socket = await connect(pod, user.token);
  const joined = await emitAck(socket, 'join-room', { roomId: room.roomId });
  expect(joined.ok).toBe(true);
  return { user, room, socket };
}

async function joinedSocket(pod: string, user: TestUser, roomId: string) {
  const socket = await connect(pod, user.token);
  expect((await emitAck(socket, 'join-room', { roomId })).ok).toBe(true);
  return socket;
}

const history = (pod: string, roomId: string, query = '', token?: string) =>
  request(pod, 'GET', `/api/rooms/${roomId}/messages${query}`, token === undefined ? {} : { token });

describe('GET /api/rooms/:roomId/messages', () => {
  it('returns { messages, hasMore } with the full message shape, newest first, to a guest', async () => {
    const { user, room, socket } = await roomWithMember('김철수');
    const text = await send(socket, { roomId: room.roomId, type: 'text', content: '안녕하세요!' });
    const image = await send(socket, { roomId: room.roomId, type: 'image', imageUrl: 'https://cdn.example/cat.png' });
    const emoji = await send(socket, { roomId: room.roomId, type: 'emoji', content: '👍🏽' });

    const result = await history(podB, room.roomId);
    expect(result.status).toBe(200);
    expect(Object.keys(result.body).sort()).toEqual(['hasMore', 'messages']);
    expect(result.body.hasMore).toBe(false);
    for (const message of result.body.messages) expect(Object.keys(message).sort()).toEqual(HISTORY_KEYS);
    const common = { roomId: room.roomId, userId: user.userId, nickname: '김철수', nicknameMask: '김**' };
    expect(result.body.messages).toEqual([
      { ...common, messageId: emoji.messageId, seq: 3, type: 'emoji', content: '👍🏽', imageUrl: null, createdAt: emoji.createdAt },
      { ...common, messageId: image.messageId, seq: 2, type: 'image', content: null, imageUrl: 'https://cdn.example/cat.png', createdAt: image.createdAt },
      { ...common, messageId: text.messageId, seq: 1, type: 'text', content: '안녕하세요!', imageUrl: null, createdAt: text.createdAt },
    ]);
    expect(text.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  it('content is returned verbatim (no HTML escaping, whitespace kept)', async () => {
    const { room, socket } = await roomWithMember();
    const content = '  <script>alert("x")</script> &amp; \n줄바꿈\t😀 ';
    await send(socket, { roomId: room.roomId, type: 'text', content });
    const result = await history(podA, room.roomId);
    expect(result.body.messages[0].content).toBe(content);
  });

  it('a valid token is fine too; a present but invalid token is 401 인증이 필요합니다', async () => {
    const { user, room, socket } = await roomWithMember();
    await send(socket, { roomId: room.roomId, type: 'text', content: '하나' });
    expect((await history(podA, room.roomId, '', user.token)).status).toBe(200);
    const expired = await makeUser('만료', { expiresInSeconds: -60 });
    for (const headers of [
      { authorization: 'Bearer garbage' },
      { authorization: `Bearer ${user.token.slice(0, -2)}` },
      { authorization: `Bearer ${expired.token}` },
      { authorization: 'Bearer ' },
    ]) {
      const result = await request(podA, 'GET', `/api/rooms/${room.roomId}/messages`, { headers });
      expect(result, headers.authorization).toEqual({ status: 401, body: UNAUTHORIZED });
    }
  });

  it('defaults to 50, allows up to 100, and pages with before', async () => {
    const { room, socket } = await roomWithMember();
    const sent: NewMessagePayload[] = [];
    for (let index = 1; index <= 120; index++) sent.push(await send(socket, { roomId: room.roomId, type: 'text', content: `m${index}` }));
    expect(sent.map((m) => m.seq)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));

    const first = await history(podA, room.roomId);
    expect(first.body.messages).toHaveLength(50);
    expect(first.body.hasMore).toBe(true);
    expect(first.body.messages.map((m: { seq: number }) => m.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 120 - i));

    const max = await history(podB, room.roomId, '?limit=100');
    expect(max.body.messages).toHaveLength(100);
    expect(max.body.hasMore).toBe(true);

    const rest = await history(podB, room.roomId, `?limit=100&before=${max.body.messages[99].messageId}`);
    expect(rest.body.messages.map((m: { content: string }) => m.content)).toEqual(Array.from({ length: 20 }, (_, i) => `m${20 - i}`));
    expect(rest.body.hasMore).toBe(false);

    // Exactly the remaining count: hasMore is false, not "maybe".
    const exact = await history(podA, room.roomId, `?limit=20&before=${max.body.messages[99].messageId}`);
    expect(exact.body.messages).toHaveLength(20);
    expect(exact.body.hasMore).toBe(false);
    const oneShort = await history(podA, room.roomId, `?limit=19&before=${max.body.messages[99].messageId}`);
    expect(oneShort.body.hasMore).toBe(true);
    // The oldest message has nothing before it.
    const none = await history(podA, room.roomId, `?before=${sent[0]!.messageId}`);
    expect(none.body).toEqual({ messages: [], hasMore: false });
    // Upper-case ids work as cursors.
    const upper = await history(podA, room.roomId.toUpperCase(), `?limit=1&before=${sent[1]!.messageId.toUpperCase()}`);
    expect(upper.body.messages.map((m: { seq: number }) => m.seq)).toEqual([1]);
  });

  it('an empty room → { messages: [], hasMore: false }', async () => {
    const owner = await makeUser();
    const room = await createRoom(podA, owner);
    expect(await history(podA, room.roomId)).toEqual({ status: 200, body: { messages: [], hasMore: false } });
  });

  it('400 limit은 100을 초과할 수 없습니다 above 100', async () => {
    const { room } = await roomWithMember();
    // Above 100 is too large however many digits it has: ten and more digits too, and a value
    // no number can hold; leading zeros do not make it an other kind of mistake.
    for (const limit of ['101', '1000', '999999999', '9999999999', '10000000000', '99999999999999999999', '9'.repeat(400), '0000000000101']) {
      expect(await history(podA, room.roomId, `?limit=${limit}`), limit).toEqual({ status: 400, body: LIMIT_TOO_LARGE });
    }
    // Leading zeros before a value in range: that value.
    const padded = await history(podA, room.roomId, '?limit=0000000000100');
    expect(padded.status).toBe(200);
  });

  it('400 limit은 1 이상의 정수여야 합니다 for limit < 1 or not an integer', async () => {
    const { room } = await roomWithMember();
    for (const limit of ['0', '-1', '-100', '1.5', '50.0', 'abc', '', '1e2', ' 5', '0x10', 'NaN', 'Infinity', '0000000000', '-9999999999', '9999999999.5', '１０']) {
      expect(await history(podA, room.roomId, `?limit=${encodeURIComponent(limit)}`), limit).toEqual({ status: 400, body: INVALID_LIMIT });
    }
    // Repeated parameters are not an integer either.
    expect(await history(podA, room.roomId, '?limit=1&limit=2')).toEqual({ status: 400, body: INVALID_LIMIT });
  });

  it('400 before 메시지를 찾을 수 없습니다 for an unknown, malformed or other-room before', async () => {
    const { room, socket } = await roomWithMember();
    const other = await roomWithMember('이영희');
    const elsewhere = await send(other.socket, { roomId: other.room.roomId, type: 'text', content: '다른 방' });
    const here = await send(socket, { roomId: room.roomId, type: 'text', content: '여기' });
    for (const before of [randomUUID(), 'not-a-uuid', elsewhere.messageId, '', "1' or '1'='1"]) {
      expect(await history(podA, room.roomId, `?before=${encodeURIComponent(before)}`), before).toEqual({ status: 400, body: BEFORE_NOT_FOUND });
    }
    const AFTER_NOT_FOUND = errorBody(400, 'Bad Request', 'after 메시지를 찾을 수 없습니다', 'AFTER_NOT_FOUND');
    for (const after of [randomUUID(), 'not-a-uuid', elsewhere.messageId]) {
      expect(await history(podA, room.roomId, `?after=${encodeURIComponent(after)}`), after).toEqual({ status: 400, body: AFTER_NOT_FOUND });
    }
    // Both cursors wrong: \`before\` is answered for, whichever way each is wrong.
    expect(await history(podA, room.roomId, `?before=${randomUUID()}&after=not-a-uuid`)).toEqual({ status: 400, body: BEFORE_NOT_FOUND });
    expect(await history(podA, room.roomId, `?before=not-a-uuid&after=${randomUUID()}`)).toEqual({ status: 400, body: BEFORE_NOT_FOUND });
    expect(await history(podA, room.roomId, `?before=${here.messageId}&after=not-a-uuid`)).toEqual({ status: 400, body: AFTER_NOT_FOUND });
  });

  it('404 방을 찾을 수 없습니다 for an unknown room or a non-UUID roomId', async () => {
    for (const roomId of [randomUUID(), 'not-a-uuid', '123', `${randomUUID()}0`]) {
      expect(await history(podA, roomId), roomId).toEqual({ status: 404, body: ROOM_NOT_FOUND });
    }
  });

  it('410 만료된 방입니다 for an expired room, on both pods', async () => {
    const { room, socket } = await roomWithMember('김철수', podA, 1);
    await send(socket, { roomId: room.roomId, type: 'text', content: '곧 사라짐' });
    // Both pods have the room cached now.
    expect((await history(podB, room.roomId)).status).toBe(200);
    await sleep(Date.parse(room.expiresAt) - Date.now() + 50);
    expect(await history(podA, room.roomId)).toEqual({ status: 410, body: ROOM_EXPIRED });
    expect(await history(podB, room.roomId, '?limit=10')).toEqual({ status: 410, body: ROOM_EXPIRED });
  });

  it('hides deleted messages, and a deleted message still works as a cursor', async () => {
    const { user, room, socket } = await roomWithMember();
    const sent: NewMessagePayload[] = [];
    for (let index = 1; index <= 6; index++) sent.push(await send(socket, { roomId: room.roomId, type: 'text', content: `d${index}` }));
    for (const index of [1, 3, 5]) {
      expect(await request(podA, 'DELETE', `/api/messages/${sent[index]!.messageId}`, { token: user.token })).toEqual({
        status: 200,
        body: { success: true },
      });
    }
    const all = await history(podB, room.roomId);
    expect(all.body.messages.map((m: { content: string }) => m.content)).toEqual(['d5', 'd3', 'd1']);
    expect(all.body.messages.map((m: { seq: number }) => m.seq)).toEqual([5, 3, 1]);
    // Paging by 1 skips the deleted ones and ends exactly.
    const page = await history(podB, room.roomId, `?limit=1&before=${sent[4]!.messageId}`);
    expect(page.body).toMatchObject({ messages: [{ content: 'd3' }], hasMore: true });
    const fromDeleted = await history(podB, room.roomId, `?before=${sent[3]!.messageId}`);
    expect(fromDeleted.body.messages.map((m: { content: string }) => m.content)).toEqual(['d3', 'd1']);
    expect(fromDeleted.body.hasMore).toBe(false);
    const last = await history(podB, room.roomId, `?limit=1&before=${sent[2]!.messageId}`);
    expect(last.body).toMatchObject({ messages: [{ content: 'd1' }], hasMore: false });
  });

  it('after returns newer messages, oldest first', async () => {
    const { room, socket } = await roomWithMember();
    const sent: NewMessagePayload[] = [];
    for (let index = 1; index <= 5; index++) sent.push(await send(socket, { roomId: room.roomId, type: 'text', content: `a${index}` }));
    const newer = await history(podA, room.roomId, `?after=${sent[1]!.messageId}`);
    expect(newer.body.messages.map((m: { seq: number }) => m.seq)).toEqual([3, 4, 5]);
    expect(newer.body.hasMore).toBe(false);
    const limited = await history(podA, room.roomId, `?after=${sent[0]!.messageId}&limit=2`);
    expect(limited.body.messages.map((m: { seq: number }) => m.seq)).toEqual([2, 3]);
    expect(limited.body.hasMore).toBe(true);
    expect((await history(podA, room.roomId, `?after=${sent[4]!.messageId}`)).body).toEqual({ messages: [], hasMore: false });
  });

  it('a one-character nickname is masked as *', async () => {
    const { room, socket } = await roomWithMember('박');
    await send(socket, { roomId: room.roomId, type: 'text', content: '한 글자' });
    expect((await history(podA, room.roomId)).body.messages[0]).toMatchObject({ nickname: '박', nicknameMask: '*' });
  });
});

describe('DELETE /api/messages/:messageId', () => {
  it('soft-deletes: 200 { success: true }, message-deleted to the room on both pods, the row stays', async () => {
    const { user, room, socket: author } = await roomWithMember('김철수', podA);
    const bob = await makeUser('이영희');
    const bobOnB = await joinedSocket(podB, bob, room.roomId);
    const outsider = await connect(podB, (await makeUser('구경꾼')).token);
    const outsiderSeen = record(outsider, 'message-deleted');
    const message = await send(author, { roomId: room.roomId, type: 'text', content: '지울 메시지' });
    const keep = await send(author, { roomId: room.roomId, type: 'text', content: '남길 메시지' });

    const onA = nextEvent(author, 'message-deleted');
    const onB = nextEvent(bobOnB, 'message-deleted');
    const result = await request(podB, 'DELETE', `/api/messages/${message.messageId}`, { token: user.token });
    expect(result).toEqual({ status: 200, body: { success: true } });
    expect(await onA).toEqual({ roomId: room.roomId, messageId: message.messageId, changeSeq: expect.any(Number) });
    expect(await onB).toEqual({ roomId: room.roomId, messageId: message.messageId, changeSeq: expect.any(Number) });

    const rows = await sql<{ id: string; is_deleted: boolean; content: string }[]>`
      select id, is_deleted, content from messages where room_id = ${room.roomId} order by seq`;
    expect(rows).toEqual([
      { id: message.messageId, is_deleted: true, content: '지울 메시지' },
      { id: keep.messageId, is_deleted: false, content: '남길 메시지' },
    ]);
    expect((await history(podA, room.roomId)).body.messages.map((m: { messageId: string }) => m.messageId)).toEqual([keep.messageId]);
    await sleep(100);
    expect(outsiderSeen).toEqual([]);
  });

  it('401 인증이 필요합니다 without a token or with an invalid one, before anything else', async () => {
    const { user, room, socket } = await roomWithMember();
    const message = await send(socket, { roomId: room.roomId, type: 'text', content: '보호됨' });
    const expired = await makeUser('만료', { expiresInSeconds: -60 });
    for (const id of [message.messageId, randomUUID(), 'not-a-uuid']) {
      const cases: Record<string, string>[] = [{}, { authorization: 'Bearer nope' }, { authorization: `Bearer ${expired.token}` }, { authorization: `Bearer ${user.token}.x` }];
      for (const headers of cases) {
        const result = await request(podA, 'DELETE', `/api/messages/${id}`, { headers });
        expect(result, `${id} ${JSON.stringify(headers)}`).toEqual({ status: 401, body: UNAUTHORIZED });
      }
    }
    const row = await sql`select is_deleted from messages where id = ${message.messageId}`;
    expect(row).toEqual([{ is_deleted: false }]);
  });

  it('404 메시지를 찾을 수 없습니다 for unknown, non-UUID and already deleted messages', async () => {
    const { user, room, socket } = await roomWithMember();
    const message = await send(socket, { roomId: room.roomId, type: 'text', content: '한 번만' });
    for (const id of [randomUUID(), 'not-a-uuid', '1', room.roomId]) {
      expect(await request(podA, 'DELETE', `/api/messages/${id}`, { token: user.token }), id).toEqual({ status: 404, body: MESSAGE_NOT_FOUND });
    }
    expect((await request(podA, 'DELETE', `/api/messages/${message.messageId}`, { token: user.token })).status).toBe(200);
    const seen = record(socket, 'message-deleted');
    expect(await request(podB, 'DELETE', `/api/messages/${message.messageId}`, { token: user.token })).toEqual({
      status: 404,
      body: MESSAGE_NOT_FOUND,
    });
    await sleep(150);
    // The failed second delete announced nothing (the first one's event may still be in flight).
    expect(seen.length).toBeLessThanOrEqual(1);
  });

  it("403 본인의 메시지만 삭제할 수 있습니다 for someone else's message, which stays", async () => {
    const { room, socket } = await roomWithMember('김철수');
    const intruder = await makeUser('이영희');
    // Even a member of the same room may not delete it.
    await joinedSocket(podB, intruder, room.roomId);
    const message = await send(socket, { roomId: room.roomId, type: 'text', content: '내 메시지' });
    const seen = record(socket, 'message-deleted');
    expect(await request(podB, 'DELETE', `/api/messages/${message.messageId}`, { token: intruder.token })).toEqual({
      status: 403,
      body: NOT_OWNER,
    });
    expect(await sql`select is_deleted from messages where id = ${message.messageId}`).toEqual([{ is_deleted: false }]);
    expect((await history(podA, room.roomId)).body.messages).toHaveLength(1);
    await sleep(150);
    expect(seen).toEqual([]);
  });

  it('the author may delete after leaving the room; the room hears it, the author does not; an upper-case id is the same message', async () => {
    const { user, room, socket: author } = await roomWithMember('김철수', podA);
    const stayer = await joinedSocket(podB, await makeUser('이영희'), room.roomId);
    const stayerOnA = await joinedSocket(podA, await makeUser('박지민'), room.roomId);
    const message = await send(author, { roomId: room.roomId, type: 'text', content: '떠나기 전' });
    expect((await emitAck(author, 'leave-room', { roomId: room.roomId })).ok).toBe(true);
    const authorSeen = record(author, 'message-deleted');
    const toRoom = nextEvent(stayer, 'message-deleted');
    const toRoomOnA = nextEvent(stayerOnA, 'message-deleted');
    expect(await request(podB, 'DELETE', `/api/messages/${message.messageId.toUpperCase()}`, { token: user.token })).toEqual({
      status: 200,
      body: { success: true },
    });
    expect(await toRoom).toEqual({ roomId: room.roomId, messageId: message.messageId, changeSeq: expect.any(Number) });
    expect(await toRoomOnA).toEqual(await toRoom);
    expect(await sql`select is_deleted from messages where id = ${message.messageId}`).toEqual([{ is_deleted: true }]);
    // The author's socket (on pod A, which has delivered the event) left the room with the
    // membership: a round trip on it flushes anything sent to it.
    expect(await emitAck(author, 'typing', { roomId: room.roomId, isTyping: false })).toEqual({ ok: true, data: {} });
    expect(authorSeen).toEqual([]);
  });

  it('two concurrent deletes on two pods: one 200, one 404, one announcement', async () => {
    const { user, room, socket } = await roomWithMember();
    const message = await send(socket, { roomId: room.roomId, type: 'text', content: '경쟁' });
    const seen = record(socket, 'message-deleted');
    const results = await Promise.all([
      request(podA, 'DELETE', `/api/messages/${message.messageId}`, { token: user.token }),
      request(podB, 'DELETE', `/api/messages/${message.messageId}`, { token: user.token }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 404]);
    await sleep(200);
    expect(seen).toEqual([{ roomId: room.roomId, messageId: message.messageId, changeSeq: expect.any(Number) }]);
  });

  it('a deleted message keeps its seq: the next message does not reuse it', async () => {
    const { user, room, socket } = await roomWithMember();
    const first = await send(socket, { roomId: room.roomId, type: 'text', content: '1' });
    const second = await send(socket, { roomId: room.roomId, type: 'text', content: '2' });
    await request(podA, 'DELETE', `/api/messages/${second.messageId}`, { token: user.token });
    const third = await send(socket, { roomId: room.roomId, type: 'text', content: '3' });
    expect([first.seq, second.seq, third.seq]).toEqual([1, 2, 3]);
  });

  it('a message of an expired room is gone: 404', async () => {
    const { user, room, socket } = await roomWithMember('김철수', podA, 1);
    const message = await send(socket, { roomId: room.roomId, type: 'text', content: '만료 전' });
    await sleep(Date.parse(room.expiresAt) - Date.now() + 50);
    const seen = await Promise.all([
      recordFor(socket, ['message-deleted'], 200),
      request(podA, 'DELETE', `/api/messages/${message.messageId}`, { token: user.token }),
    ]);
    expect(seen[1]).toEqual({ status: 404, body: MESSAGE_NOT_FOUND });
    expect(seen[0]).toEqual([]);
  });
});
