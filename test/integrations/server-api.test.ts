import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createMessagePartitionsRepository } from '@chat/db';
import { buildGateway, loadConfig } from '@chat/gateway';
import { describe, expect } from 'vitest';
import { ERRORS, type NewMessagePayload } from '@chat/protocol';
import { TEST_JWT_SECRET, uniquePrefix, createRoom, emitAck, makeUser, nextEvent, record, request, sleep, type TestSocket } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * Issue 20 §2, PROTOCOL §17 [ext]: the server API for trusted backends, on two pods of one
 * cluster. Keys are configured as SHA-256 hashes; one is revoked.
 */
const KEY = `sk_${randomBytes(24).toString('hex')}`;
const REVOKED_KEY = `sk_${randomBytes(24).toString('hex')}`;
const OTHER_KEY = `sk_${randomBytes(24).toString('hex')}`;
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

const it = clusterTest({
  pods: 2,
  // A worker sweeps this database's rooms (close-room test).
  ownDatabase: true,
  env: {
    SERVER_API_KEYS: `backend:${sha256(KEY)},old-backend:${sha256(REVOKED_KEY)},other-backend:${sha256(OTHER_KEY)}`,
    SERVER_API_KEYS_REVOKED: 'old-backend',
    MESSAGE_RATE_LIMIT_PER_MINUTE: '100000',
    // No room-occupied within a test: the close test counts the room's changes.
    ROOM_OCCUPANCY_GRACE_MS: '600000',
  },
});

const asBackend = (key = KEY, extra: Record<string, string> = {}) => ({ headers: { 'x-api-key': key, ...extra } });
const BOT = { kind: 'bot', id: 'weather-bot', name: '날씨봇' } as const;

async function joined(connect: (url: string, token: string) => Promise<TestSocket>, url: string, token: string, roomId: string) {
  const socket = await connect(url, token);
  expect((await emitAck(socket, 'join-room', { roomId })).ok).toBe(true);
  return socket;
}

describe('server API [ext]', () => {
  it('refuses a missing, wrong or revoked key, and a user JWT, with 401 and stores nothing', async ({ cluster, sql }) => {
    const [a] = cluster.pods;
    const owner = await makeUser();
    const room = await createRoom(a!.url, owner);
    const path = `/api/server/rooms/${room.roomId}/messages`;
    const body = { sender: BOT, type: 'text', content: '안녕' };
    const cases = [
      [{}, 'API_KEY_REQUIRED', 'API 키가 필요합니다'],
      [asBackend(`${KEY}x`), 'INVALID_API_KEY', '유효하지 않은 API 키입니다'],
      [asBackend(sha256(KEY)), 'INVALID_API_KEY', '유효하지 않은 API 키입니다'],
      [{ token: owner.token }, 'API_KEY_REQUIRED', 'API 키가 필요합니다'],
      [asBackend(owner.token), 'INVALID_API_KEY', '유효하지 않은 API 키입니다'],
      [asBackend(REVOKED_KEY), 'API_KEY_REVOKED', '폐기된 API 키입니다'],
    ] as const;
    for (const [auth, code, message] of cases) {
      const result = await request(a!.url, 'POST', path, { ...auth, body });
      expect(result, code).toEqual({ status: 401, body: { statusCode: 401, error: 'Unauthorized', message, code } });
    }
    expect(await sql`select 1 from messages where room_id = ${room.roomId}`).toHaveLength(0);
    expect((await request(a!.url, 'POST', path, { ...asBackend(), body })).status).toBe(201);
  });

  it('publishes as a bot once per Idempotency-Key, retried concurrently on both pods, acked after COMMIT', async ({ cluster, sql, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('방장');
    const room = await createRoom(a!.url, owner);
    const listener = await joined(connect, b!.url, owner.token, room.roomId);
    const heard = record(listener, 'new-message');

    const idempotencyKey = `order-${randomBytes(6).toString('hex')}`;
    const attempts = await Promise.all(
      Array.from({ length: 8 }, (_, index) =>
        request((index % 2 ? b : a)!.url, 'POST', `/api/server/rooms/${room.roomId}/messages`, {
          ...asBackend(KEY, { 'idempotency-key': idempotencyKey }),
          body: { sender: BOT, type: 'text', content: '오늘은 맑음' },
        }),
      ),
    );
    const statuses = attempts.map((attempt) => attempt.status).sort();
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    const messageIds = new Set(attempts.map((attempt) => attempt.body.message.messageId));
    expect(messageIds.size).toBe(1);
    const created = attempts.find((attempt) => attempt.status === 201)!.body;
    expect(created.message).toMatchObject({
      roomId: room.roomId,
      type: 'text',
      content: '오늘은 맑음',
      nicknameMask: '날**',
      // Scoped to the API key, and neither the key's id nor the raw key shown to the room.
      clientMessageId: expect.stringMatching(/^srv_[A-Za-z0-9_-]{43}$/),
      sender: BOT,
      seq: 1,
      changeSeq: expect.any(Number),
    });
    // Acknowledged after COMMIT: the row is there when the answer is.
    const rows = await sql`select id from messages where room_id = ${room.roomId}`;
    expect(rows.map((row) => row.id)).toEqual([created.message.messageId]);

    await sleep(300);
    expect(heard).toHaveLength(1);
    expect(heard[0]).toEqual(created.message);
    // History shows the bot as a bot.
    const history = await request(a!.url, 'GET', `/api/rooms/${room.roomId}/messages`);
    expect(history.body.messages[0]).toMatchObject({ messageId: created.message.messageId, nickname: '날씨봇', sender: BOT });
  });

  it('scopes an Idempotency-Key to its API key and refuses it for a different request', async ({ cluster, sql }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser();
    const room = await createRoom(a!.url, owner);
    const publish = (url: string, key: string, body: Record<string, unknown>, idempotencyKey = 'same-key') =>
      request(url, 'POST', `/api/server/rooms/${room.roomId}/messages`, { ...asBackend(key, { 'idempotency-key': idempotencyKey }), body });
    const original = { sender: BOT, type: 'text', content: '원래 메시지' };

    const first = await publish(a!.url, KEY, original);
    expect(first.status).toBe(201);
    // Another backend, the same key value (and even the same sender): its own message.
    const other = await publish(b!.url, OTHER_KEY, { ...original, content: '다른 백엔드' });
    expect(other.status).toBe(201);
    expect(other.body.message.messageId).not.toBe(first.body.message.messageId);
    expect(other.body.message.content).toBe('다른 백엔드');
    // The first backend's retry, from the other pod: the original.
    const retry = await publish(b!.url, KEY, original);
    expect(retry.status).toBe(200);
    expect(retry.body.message).toEqual(first.body.message);

    // The same key for a different request: another sender, body or room is refused.
    const secondRoom = await createRoom(a!.url, owner);
    for (const [url, body, path] of [
      [a!.url, { ...original, sender: { kind: 'bot', id: 'other-bot', name: '다른봇' } }, room.roomId],
      [b!.url, { ...original, content: '바뀐 내용' }, room.roomId],
      [a!.url, original, secondRoom.roomId],
    ] as const) {
      const reused = await request(url, 'POST', `/api/server/rooms/${path}/messages`, { ...asBackend(KEY, { 'idempotency-key': 'same-key' }), body });
      expect(reused.status).toBe(422);
      expect(reused.body).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', message: 'Idempotency-Key가 다른 요청에 이미 사용되었습니다' });
    }
    // In a batch, per item.
    const batch = await request(a!.url, 'POST', '/api/server/messages/batch', {
      ...asBackend(KEY),
      body: { items: [
        { roomId: room.roomId, ...original, idempotencyKey: 'same-key' },
        { roomId: room.roomId, ...original, content: '바뀐 내용', idempotencyKey: 'same-key' },
      ] },
    });
    expect(batch.body.results.map((item: { ok: boolean; created?: boolean; error?: { code: string } }) => (item.ok ? item.created : item.error!.code))).toEqual([
      false,
      'IDEMPOTENCY_KEY_REUSED',
    ]);

    const rows = await sql`select content from messages where room_id in (${room.roomId}, ${secondRoom.roomId}) order by seq`;
    expect(rows.map((row) => row.content)).toEqual(['원래 메시지', '다른 백엔드']);
  });

  it('publishes a batch in one transaction, answering each item', async ({ cluster, sql, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser();
    const first = await createRoom(a!.url, owner);
    const second = await createRoom(a!.url, owner);
    const listener = await joined(connect, b!.url, owner.token, first.roomId);
    const heard = record(listener, 'new-message');
    const items = [
      { roomId: first.roomId, sender: BOT, type: 'text', content: '하나' },
      { roomId: second.roomId, sender: { kind: 'system', id: 'ops', name: '운영' }, type: 'emoji', content: '👍' },
      { roomId: first.roomId, sender: BOT, type: 'text', content: '' },
      { roomId: 'not-a-room', sender: BOT, type: 'text', content: '넷' },
      { roomId: first.roomId, sender: BOT, type: 'text', content: '다섯' },
    ];
    const result = await request(a!.url, 'POST', '/api/server/messages/batch', {
      ...asBackend(KEY, { 'idempotency-key': 'batch-1' }),
      body: { items },
    });
    expect(result.status).toBe(200);
    expect(result.body.results.map((item: { ok: boolean; error?: { code: string } }) => (item.ok ? 'ok' : item.error!.code))).toEqual([
      'ok',
      'ok',
      'CONTENT_REQUIRED',
      'ROOM_NOT_FOUND',
      'ok',
    ]);
    const ids = result.body.results.filter((item: { ok: boolean }) => item.ok).map((item: { message: NewMessagePayload }) => item.message.messageId);
    // One group commit: every stored row carries the same inserting transaction id.
    const xids = await sql`select distinct xmin::text from messages where id in ${sql(ids)}`;
    expect(xids).toHaveLength(1);
    // A retry of the batch stores nothing new.
    const again = await request(b!.url, 'POST', '/api/server/messages/batch', {
      ...asBackend(KEY, { 'idempotency-key': 'batch-1' }),
      body: { items },
    });
    expect(again.body.results.filter((item: { ok: boolean }) => item.ok).map((item: { created: boolean; message: { messageId: string } }) => [item.created, item.message.messageId])).toEqual(
      ids.map((id: string) => [false, id]),
    );
    await sleep(300);
    expect(heard.map((message) => message.content)).toEqual(['하나', '다섯']);

    // 1–100 items: an empty batch and one of 101 are refused whole, nothing stored.
    const before = await sql`select count(*)::int as n from messages where room_id = ${first.roomId}`;
    for (const size of [0, 101]) {
      const refused = await request(a!.url, 'POST', '/api/server/messages/batch', {
        ...asBackend(KEY),
        body: { items: Array.from({ length: size }, (_, i) => ({ roomId: first.roomId, sender: BOT, type: 'text', content: `초과 ${i}` })) },
      });
      expect({ size, status: refused.status, code: refused.body.code }).toEqual({ size, status: 400, code: 'INVALID_REQUEST' });
    }
    expect(await sql`select count(*)::int as n from messages where room_id = ${first.roomId}`).toEqual(before);
  });

  const batchOf = (items: unknown[], idempotencyKey?: string, url?: string) =>
    request(url!, 'POST', '/api/server/messages/batch', { ...asBackend(KEY, idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }), body: { items } });

  it('takes a full batch of the longest messages (more than the 64 KiB of other bodies)', async ({ cluster, sql }) => {
    const [a] = cluster.pods;
    const room = await createRoom(a!.url, await makeUser());
    // 100 items of 1000 Korean characters: about 300 KB of JSON.
    const longest = Array.from({ length: 100 }, (_, i) => ({ roomId: room.roomId, sender: BOT, type: 'text', content: `${i}`.padEnd(1000, '가') }));
    const full = await batchOf(longest, undefined, a!.url);
    expect(full.status).toBe(200);
    expect(full.body.results.filter((item: { ok: boolean }) => item.ok)).toHaveLength(100);
    expect(await sql`select count(*)::int as n from messages where room_id = ${room.roomId}`).toEqual([{ n: 100 }]);
  });

  it('keys every item of a batch from a long Idempotency-Key alike, and refuses the whole batch for a bad one', async ({ cluster, sql }) => {
    const [a, b] = cluster.pods;
    const room = await createRoom(a!.url, await makeUser());
    const batch = (items: unknown[], idempotencyKey?: string, url = a!.url) => batchOf(items, idempotencyKey, url);
    const count = async () => (await sql`select count(*)::int as n from messages where room_id = ${room.roomId}`)[0]!.n as number;

    // A 62-character key: `<key>:<index>` passes 64 characters from index 10 on, and every item
    // is keyed all the same; a retry of the batch stores none again.
    const items = Array.from({ length: 12 }, (_, i) => ({ roomId: room.roomId, sender: BOT, type: 'text', content: `항목 ${i}` }));
    const key = 'k'.repeat(62);
    const first = await batch(items, key);
    expect(first.body.results.map((item: { ok: boolean; created?: boolean }) => item.ok && item.created)).toEqual(items.map(() => true));
    const retry = await batch(items, key, b!.url);
    expect(retry.body.results.map((item: { ok: boolean; created?: boolean }) => item.ok && item.created === false)).toEqual(items.map(() => true));
    expect(await count()).toBe(12);

    // A key a single publish would refuse refuses the whole batch, as the single publish does.
    for (const refused of ['k'.repeat(65), '']) {
      const answer = await batch(items, refused);
      expect(answer).toEqual({ status: 400, body: { statusCode: 400, error: 'Bad Request', message: ERRORS.INVALID_CLIENT_MESSAGE_ID.message, code: 'INVALID_CLIENT_MESSAGE_ID' } });
    }
    expect(await count()).toBe(12);
  });

  it('disconnects every socket of a user, on the other pod too', async ({ cluster, connect }) => {
    const [a, b] = cluster.pods;
    const user = await makeUser();
    const onA = await connect(a!.url, user.token);
    const onB = await connect(b!.url, user.token);
    const bystander = await connect(b!.url, (await makeUser()).token);
    const goneA = new Promise((resolve) => onA.once('disconnect', resolve));
    const goneB = new Promise((resolve) => onB.once('disconnect', resolve));
    const result = await request(a!.url, 'POST', `/api/server/users/${user.userId}/disconnect`, asBackend());
    expect(result).toEqual({ status: 200, body: { success: true } });
    expect(await goneB).toBe('io server disconnect');
    expect(await goneA).toBe('io server disconnect');
    expect(bystander.connected).toBe(true);
  });

  it('removes a user from a room: the room hears user-left, every device of the user room-left', async ({ cluster, sql, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('방장');
    const member = await makeUser('회원');
    const room = await createRoom(a!.url, owner);
    const ownerSocket = await joined(connect, a!.url, owner.token, room.roomId);
    const memberOnB = await joined(connect, b!.url, member.token, room.roomId);
    const memberOnA = await connect(a!.url, member.token);
    await sleep(100);

    const userLeft = nextEvent(ownerSocket, 'user-left');
    const leftB = nextEvent(memberOnB, 'room-left');
    const leftA = nextEvent(memberOnA, 'room-left');
    const result = await request(a!.url, 'DELETE', `/api/server/rooms/${room.roomId}/members/${member.userId}`, asBackend());
    expect(result).toEqual({ status: 200, body: { success: true, changeSeq: expect.any(Number) } });
    expect(await userLeft).toEqual({ roomId: room.roomId, userId: member.userId, memberCount: 1, changeSeq: result.body.changeSeq });
    expect(await leftB).toEqual({ roomId: room.roomId, changeSeq: result.body.changeSeq });
    expect(await leftA).toEqual({ roomId: room.roomId, changeSeq: result.body.changeSeq });
    expect(await sql`select 1 from room_members where room_id = ${room.roomId} and user_id = ${member.userId}`).toHaveLength(0);

    // Its sockets are out of the room: the next message does not reach them.
    const missed = record(memberOnB, 'new-message');
    expect((await emitAck(ownerSocket, 'send-message', { roomId: room.roomId, type: 'text', content: '안녕' })).ok).toBe(true);
    await sleep(300);
    expect(missed).toEqual([]);
    const again = await request(b!.url, 'DELETE', `/api/server/rooms/${room.roomId}/members/${member.userId}`, asBackend());
    expect(again.status).toBe(403);
  });

  it('serves a room\'s whole change feed, who joined and left included, to a key and to nobody else', async ({ cluster, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('방장');
    const member = await makeUser('회원');
    const room = await createRoom(a!.url, owner);
    const { roomId } = room;
    await joined(connect, a!.url, owner.token, roomId);
    const memberSocket = await joined(connect, b!.url, member.token, roomId);
    expect((await emitAck(memberSocket, 'leave-room', { roomId })).ok).toBe(true);
    const changes = (query: string, auth: { token?: string; headers?: Record<string, string> } = asBackend()) =>
      request(b!.url, 'GET', `/api/server/rooms/${roomId}/changes${query}`, auth);

    // Not a member of any room, and still every payload whole; paged as the public route.
    const first = await changes('?after=0&limit=2');
    expect(first).toEqual({
      status: 200,
      body: {
        changes: [
          { roomId, changeSeq: 1, event: 'user-joined', payload: { roomId, userId: owner.userId, nicknameMask: '방*', memberCount: 1, changeSeq: 1 } },
          { roomId, changeSeq: 2, event: 'user-joined', payload: { roomId, userId: member.userId, nicknameMask: '회*', memberCount: 2, changeSeq: 2 } },
        ],
        hasMore: true,
      },
    });
    expect((await changes('?after=2')).body).toEqual({
      changes: [{ roomId, changeSeq: 3, event: 'user-left', payload: { roomId, userId: member.userId, memberCount: 1, changeSeq: 3 } }],
      hasMore: false,
    });

    // The public route's errors.
    expect((await changes('?after=-1')).body.code).toBe('INVALID_REQUEST');
    expect((await changes('?limit=101')).body.code).toBe('LIMIT_TOO_LARGE');
    const missing = await request(a!.url, 'GET', '/api/server/rooms/00000000-0000-4000-8000-000000000000/changes', asBackend());
    expect(missing.body.code).toBe('ROOM_NOT_FOUND');
    // Only with a key: a user JWT, even a member's, is no key.
    for (const [auth, code] of [
      [{}, 'API_KEY_REQUIRED'],
      [{ token: owner.token }, 'API_KEY_REQUIRED'],
      [asBackend(owner.token), 'INVALID_API_KEY'],
      [asBackend(REVOKED_KEY), 'API_KEY_REVOKED'],
    ] as const) {
      const refused = await changes('', auth);
      expect(refused.status, code).toBe(401);
      expect(refused.body.code).toBe(code);
    }
  });

  it('extends a room: its members on every pod hear the new expiry, its messages stay readable and deletable, and the worker moves them to the new day', async ({ cluster, sql, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser();
    const room = await createRoom(a!.url, owner, { ttlSeconds: 3 });
    const { roomId } = room;
    const socket = await joined(connect, a!.url, owner.token, roomId);
    const memberOnB = await joined(connect, b!.url, (await makeUser()).token, roomId);
    const sent = await emitAck<NewMessagePayload>(socket, 'send-message', { roomId, type: 'text', content: '오래 남을 메시지' });
    if (!sent.ok) throw new Error('send failed');
    // Pod B caches the room's old expiry.
    expect((await request(b!.url, 'GET', `/api/rooms/${roomId}/messages`)).status).toBe(200);
    const heardOnA = nextEvent(socket, 'room-lifetime-changed');
    const heardOnB = nextEvent(memberOnB, 'room-lifetime-changed');

    const extended = await request(b!.url, 'POST', `/api/server/rooms/${roomId}/extend`, { ...asBackend(), body: { ttlSeconds: 86_400 } });
    expect(extended.status).toBe(200);
    const newExpiry = extended.body.expiresAt as string;
    expect(Date.parse(newExpiry)).toBeGreaterThan(Date.now() + 86_000_000);
    // The move is the room's next change, announced on both pods and in the feed at that number.
    const moved = { roomId, expiresAt: newExpiry, changeSeq: sent.data.changeSeq + 1 };
    expect(await heardOnA).toEqual(moved);
    expect(await heardOnB).toEqual(moved);
    const feed = await request(a!.url, 'GET', `/api/rooms/${roomId}/changes`);
    expect(feed.body.changes.map((change: { changeSeq: number }) => change.changeSeq)).toEqual([1, 2, 3, 4]);
    expect(feed.body.changes.at(-1)).toEqual({ roomId, changeSeq: moved.changeSeq, event: 'room-lifetime-changed', payload: moved });
    // The extend moved no message (migration 0013): it stays under the room's old expiry, which
    // the room lists, until the worker's partition job moves it.
    const placement = async () =>
      (await sql<{ expires_at: Date; part: string }[]>`
        select expires_at, tableoid::regclass::text as part from messages where room_id = ${room.roomId}`)[0]!;
    expect((await placement()).expires_at.toISOString()).toBe(room.expiresAt);

    // Past the old expiry, it is read and deleted as any message of the live room.
    await sleep(Date.parse(room.expiresAt) - Date.now() + 200);
    for (const pod of [a!, b!]) {
      const history = await request(pod.url, 'GET', `/api/rooms/${roomId}/messages`);
      expect(history.status).toBe(200);
      expect(history.body.messages.map((message: { content: string }) => message.content)).toEqual(['오래 남을 메시지']);
    }
    const later = await emitAck<NewMessagePayload>(socket, 'send-message', { roomId, type: 'text', content: '아직 살아있어요' });
    expect(later.ok).toBe(true);
    expect((await request(b!.url, 'DELETE', `/api/messages/${sent.data.messageId}`, { token: owner.token })).body).toEqual({ success: true });

    // The worker's batch (its partition job's step) moves it into the new expiry's day.
    expect(await createMessagePartitionsRepository(sql).relocateBatch(roomId, 100)).toEqual({ moved: 1, deleted: 0, remaining: 0 });
    expect(await placement()).toEqual({ expires_at: new Date(newExpiry), part: `messages_p${newExpiry.slice(0, 10).replaceAll('-', '')}` });
    const history = await request(a!.url, 'GET', `/api/rooms/${roomId}/messages`);
    expect(history.body.messages.map((message: { content: string }) => message.content)).toEqual(['아직 살아있어요']);
    expect((await request(a!.url, 'POST', `/api/server/rooms/${roomId}/extend`, { ...asBackend(), body: { ttlSeconds: 0 } })).body.code).toBe('INVALID_TTL');
  });

  it('closes a room now: members hear it ends now, the worker expires it the usual way, the feed ends with room-expired', async ({ cluster, connect, startWorker }) => {
    const [a, b] = cluster.pods;
    await startWorker();
    const owner = await makeUser();
    const room = await createRoom(a!.url, owner);
    const socket = await joined(connect, b!.url, owner.token, room.roomId);
    expect((await request(b!.url, 'GET', `/api/rooms/${room.roomId}/messages`)).status).toBe(200);
    const ending = nextEvent(socket, 'room-lifetime-changed');
    const expired = nextEvent(socket, 'room-expired', 10_000);

    const closed = await request(a!.url, 'POST', `/api/server/rooms/${room.roomId}/close`, asBackend());
    expect(closed.status).toBe(200);
    expect(Date.parse(closed.body.expiresAt)).toBeLessThanOrEqual(Date.now());
    expect(await ending).toEqual({ roomId: room.roomId, expiresAt: closed.body.expiresAt, changeSeq: 2 });
    expect(await expired).toEqual({ roomId: room.roomId, changeSeq: 3 });
    for (const pod of [a!, b!]) {
      expect((await request(pod.url, 'GET', `/api/rooms/${room.roomId}/messages`)).status).toBe(410);
    }
    expect((await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '늦었나요' })).ok).toBe(false);
    expect((await request(a!.url, 'POST', `/api/server/rooms/${room.roomId}/extend`, { ...asBackend(), body: { ttlSeconds: 60 } })).status).toBe(410);
  });

  it('limits refused calls (no key, a wrong or a revoked one) per client address, as a guest is limited', async ({ cluster }) => {
    const gateway = await buildGateway(
      loadConfig({
        PORT: '0',
        DATABASE_URL: cluster.databaseUrl,
        REDIS_URL: cluster.redisUrl,
        // Its own prefix: its rate-limit counters start at zero.
        REDIS_PREFIX: uniquePrefix('refusals'),
        JWT_SECRET: TEST_JWT_SECRET,
        DATABASE_POOL_SIZE: '2',
        HTTP_RATE_LIMIT_PER_MINUTE: '3',
        SERVER_API_KEYS: `backend:${sha256(KEY)},old-backend:${sha256(REVOKED_KEY)}`,
        SERVER_API_KEYS_REVOKED: 'old-backend',
      }),
      { logger: pino({ level: 'silent' }) },
    );
    try {
      const call = (headers: Record<string, string>, remoteAddress = '198.51.100.7') =>
        gateway.http.inject({ method: 'GET', url: '/api/server/rooms/00000000-0000-4000-8000-000000000000/changes', headers, remoteAddress });
      expect((await call({})).statusCode).toBe(401);
      expect((await call({ 'x-api-key': `${KEY}x` })).statusCode).toBe(401);
      expect((await call({ 'x-api-key': REVOKED_KEY })).statusCode).toBe(401);
      // The address's fourth refusal within the minute: 429, Retry-After, nothing else said.
      const limited = await call({ 'x-api-key': `${KEY}y` });
      expect(limited.statusCode).toBe(429);
      expect(JSON.parse(limited.body)).toEqual({ statusCode: 429, error: 'Too Many Requests', message: ERRORS.TOO_MANY_REQUESTS.message, code: 'TOO_MANY_REQUESTS' });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      // A valid key from that address, and a refusal from another address, are not held back.
      expect((await call({ 'x-api-key': KEY })).statusCode).toBe(404);
      expect((await call({ 'x-api-key': `${KEY}x` }, '198.51.100.8')).statusCode).toBe(401);
    } finally {
      await gateway.close();
    }
  });

  it('logs every call with the key id, never the key, limits each key on its own, and documents the routes in the OpenAPI', async ({ cluster }) => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const gateway = await buildGateway(
      loadConfig({
        PORT: '0',
        DATABASE_URL: cluster.databaseUrl,
        REDIS_URL: cluster.redisUrl,
        // Its own prefix: its rate-limit counters start at zero.
        REDIS_PREFIX: uniquePrefix('audit'),
        JWT_SECRET: TEST_JWT_SECRET,
        DATABASE_POOL_SIZE: '2',
        SERVER_API_RATE_LIMIT_PER_MINUTE: '3',
        SERVER_API_KEYS: `backend:${sha256(KEY)},old-backend:${sha256(REVOKED_KEY)},other-backend:${sha256(OTHER_KEY)}`,
        SERVER_API_KEYS_REVOKED: 'old-backend',
      }),
      { logger: pino({ level: 'info' }, sink) },
    );
    try {
      const owner = await makeUser();
      const room = await createRoom(cluster.pods[0]!.url, owner);
      const calls = [
        [KEY, 201],
        [REVOKED_KEY, 401],
        [`${KEY}-wrong`, 401],
      ] as const;
      for (const [key, status] of calls) {
        const response = await gateway.http.inject({
          method: 'POST',
          url: `/api/server/rooms/${room.roomId}/messages`,
          headers: { 'x-api-key': key, 'content-type': 'application/json' },
          payload: { sender: BOT, type: 'text', content: '기록' },
        });
        expect(response.statusCode).toBe(status);
      }
      const audit = lines.map((line) => JSON.parse(line)).filter((line) => line.msg === 'server api call');
      expect(audit.map((line) => [line.apiKeyId, line.statusCode, line.route])).toEqual([
        ['backend', 201, '/api/server/rooms/:roomId/messages'],
        ['old-backend', 401, '/api/server/rooms/:roomId/messages'],
        [null, 401, '/api/server/rooms/:roomId/messages'],
      ]);
      // The key's budget (3 a minute; refused keys spend none): two more, then 429 with Retry-After.
      const publish = () =>
        gateway.http.inject({
          method: 'POST',
          url: `/api/server/rooms/${room.roomId}/messages`,
          headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
          payload: { sender: BOT, type: 'text', content: '한도' },
        });
      expect((await publish()).statusCode).toBe(201);
      expect((await publish()).statusCode).toBe(201);
      const limited = await publish();
      expect(limited.statusCode).toBe(429);
      expect(JSON.parse(limited.body).code).toBe('TOO_MANY_REQUESTS');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      // Users' requests do not spend it, nor it theirs.
      expect((await gateway.http.inject({ method: 'GET', url: `/api/rooms/${room.roomId}/changes` })).statusCode).toBe(200);
      // Another key has a budget of its own; reading the feed is a call like the others.
      const feed = await gateway.http.inject({ method: 'GET', url: `/api/server/rooms/${room.roomId}/changes`, headers: { 'x-api-key': OTHER_KEY } });
      expect(feed.statusCode).toBe(200);
      const lastCall = lines.map((line) => JSON.parse(line)).filter((line) => line.msg === 'server api call').at(-1);
      expect([lastCall.apiKeyId, lastCall.statusCode, lastCall.route]).toEqual(['other-backend', 200, '/api/server/rooms/:roomId/changes']);
      for (const line of lines) {
        expect(line).not.toContain(KEY);
        expect(line).not.toContain(REVOKED_KEY);
        expect(line).not.toContain(OTHER_KEY);
      }

      const openApi = JSON.parse((await gateway.http.inject({ method: 'GET', url: '/docs/json' })).body);
      expect(Object.keys(openApi.paths)).toEqual(
        expect.arrayContaining([
          '/api/rooms/{roomId}/changes',
          '/api/server/rooms/{roomId}/messages',
          '/api/server/messages/batch',
          '/api/server/users/{userId}/disconnect',
          '/api/server/rooms/{roomId}/members/{userId}',
          '/api/server/rooms/{roomId}/close',
          '/api/server/rooms/{roomId}/extend',
          '/api/server/rooms/{roomId}/changes',
        ]),
      );
      expect(openApi.paths['/api/server/rooms/{roomId}/changes'].get).toMatchObject({ tags: ['server api'], security: [{ apiKey: [] }] });
      expect(openApi.components.securitySchemes.apiKey).toEqual({ type: 'apiKey', in: 'header', name: 'X-Api-Key' });
      // The Idempotency-Key's length and the message fields' rules, as the routes check them.
      for (const path of ['/api/server/rooms/{roomId}/messages', '/api/server/messages/batch']) {
        const header = openApi.paths[path].post.parameters.find((parameter: { name: string }) => parameter.name === 'idempotency-key');
        expect(header.schema, path).toMatchObject({ type: 'string', minLength: 1, maxLength: 64 });
      }
      const publishBody = openApi.paths['/api/server/rooms/{roomId}/messages'].post.requestBody.content['application/json'].schema;
      expect(publishBody.properties.type.description).toContain('"text" | "image" | "emoji"');
      expect(publishBody.properties.content.description).toContain('1–1000 characters');
    } finally {
      await gateway.close();
    }
  });
});
