import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { connect, createRoom, emitAck, makeUser, rawRequest, request, sleep, type TestUser } from '@chat/testing';
import { clusterTest, startCluster, type TestCluster } from '../support/index.ts';

/** PROTOCOL §9 (rooms, dev login) and the REST error shape of §8. */

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const errorBody = (statusCode: number, error: string, message: string, code: string) => ({ statusCode, error, message, code });
const UNAUTHORIZED = errorBody(401, 'Unauthorized', '인증이 필요합니다', 'UNAUTHORIZED');
const ROOM_NOT_FOUND = errorBody(404, 'Not Found', '방을 찾을 수 없습니다', 'ROOM_NOT_FOUND');
const INVALID_ROOM_NAME = errorBody(400, 'Bad Request', '방 이름은 1~50자여야 합니다', 'INVALID_ROOM_NAME');
const INVALID_TTL = errorBody(400, 'Bad Request', 'ttlSeconds는 1~86400 사이의 정수여야 합니다', 'INVALID_TTL');

let cluster: TestCluster;
let url: string;
let owner: TestUser;

// One owner creates every room of this file, more than a minute's budget of room creation
// (limits/room-create-rate-limit.test.ts tests that budget).
const budget = { ROOM_CREATE_RATE_LIMIT_PER_MINUTE: '1000' };
const it = clusterTest({ pods: 2, env: budget }).extend('noDevLogin', { scope: 'file' }, async ({}, { onCleanup }) => {
  const noDevLogin = await startCluster(1, { ...budget, AUTH_DEV_LOGIN: 'false' });
  onCleanup(() => noDevLogin.close());
  return noDevLogin;
}).extend('shortTokens', { scope: 'file' }, async ({}, { onCleanup }) => {
  const shortTokens = await startCluster(1, { ...budget, JWT_MAX_LIFETIME_SECONDS: '600' });
  onCleanup(() => shortTokens.close());
  return shortTokens;
});
it.beforeAll(async ({ cluster: started }) => {
  cluster = started;
  url = cluster.pods[0]!.url;
  owner = await makeUser('방장님');
});

describe('POST /api/rooms', () => {
  it('creates a room: 201 with exactly { roomId, name, createdBy, memberCount, createdAt, expiresAt }', async () => {
    const before = Date.now();
    const result = await request(url, 'POST', '/api/rooms', { token: owner.token, body: { name: '프론트엔드 스터디' } });
    expect(result.status).toBe(201);
    expect(Object.keys(result.body).sort()).toEqual(['createdAt', 'createdBy', 'expiresAt', 'memberCount', 'name', 'roomId']);
    expect(result.body).toMatchObject({ name: '프론트엔드 스터디', createdBy: owner.userId, memberCount: 0 });
    expect(result.body.roomId).toMatch(UUID);
    expect(result.body.createdAt).toMatch(ISO_MS);
    expect(result.body.expiresAt).toMatch(ISO_MS);
    const createdAt = Date.parse(result.body.createdAt);
    expect(createdAt).toBeGreaterThanOrEqual(before - 1000);
    expect(createdAt).toBeLessThanOrEqual(Date.now() + 1000);
    // Default lifetime: ROOM_TTL, 24 h.
    expect(Date.parse(result.body.expiresAt) - createdAt).toBe(86_400_000);
  });

  it('honours ttlSeconds at both ends of 1–86400', async () => {
    for (const ttlSeconds of [1, 60, 86_400]) {
      const result = await request(url, 'POST', '/api/rooms', { token: owner.token, body: { name: `ttl ${ttlSeconds}`, ttlSeconds } });
      expect(result.status).toBe(201);
      expect(Date.parse(result.body.expiresAt) - Date.parse(result.body.createdAt)).toBe(ttlSeconds * 1000);
    }
  });

  it('accepts names of 1 and 50 characters (code points), rejects 0 and 51', async () => {
    for (const name of ['a', '가'.repeat(50), '😀'.repeat(50)]) {
      const ok = await request(url, 'POST', '/api/rooms', { token: owner.token, body: { name } });
      expect(ok.status, name).toBe(201);
      expect(ok.body.name).toBe(name);
    }
    for (const name of ['', '   ', '가'.repeat(51), '😀'.repeat(51)]) {
      const bad = await request(url, 'POST', '/api/rooms', { token: owner.token, body: { name } });
      expect(bad, name).toEqual({ status: 400, body: INVALID_ROOM_NAME });
    }
  });

  it.each<[string, unknown]>([
    ['no body fields', {}],
    ['a numeric name', { name: 5 }],
    ['a null name', { name: null }],
    ['an array name', { name: ['방'] }],
  ])('rejects %s with 400 INVALID_ROOM_NAME', async (_label, body) => {
    const result = await request(url, 'POST', '/api/rooms', { token: owner.token, body });
    expect(result).toEqual({ status: 400, body: INVALID_ROOM_NAME });
  });

  it.each<[string, unknown]>([
    ['0', 0],
    ['-1', -1],
    ['86401', 86_401],
    ['1.5', 1.5],
    ['a string', '60'],
    ['null', null],
    ['an object', { seconds: 60 }],
  ])('rejects ttlSeconds %s with 400 INVALID_TTL', async (_label, ttlSeconds) => {
    const result = await request(url, 'POST', '/api/rooms', { token: owner.token, body: { name: '방', ttlSeconds } });
    expect(result).toEqual({ status: 400, body: INVALID_TTL });
  });

  it('requires authentication: 401 인증이 필요합니다 without, with a bad or an expired token', async () => {
    const body = { name: '익명 방' };
    const expired = await makeUser('만료', { expiresInSeconds: -60 });
    const cases: Record<string, string>[] = [
      {},
      { authorization: 'Bearer not-a-jwt' },
      { authorization: `Bearer ${owner.token}x` },
      { authorization: `Bearer ${expired.token}` },
      { authorization: 'Bearer ' },
      { authorization: 'Basic dXNlcjpwYXNz' },
    ];
    for (const headers of cases) {
      const result = await request(url, 'POST', '/api/rooms', { body, headers });
      expect(result, JSON.stringify(headers)).toEqual({ status: 401, body: UNAUTHORIZED });
    }
  });

  it('does not join the creator, and the room is visible from the other pod at once', async () => {
    const room = await createRoom(url, owner, { name: '크로스 팟' });
    const seen = await request(cluster.pods[1]!.url, 'GET', `/api/rooms/${room.roomId}`);
    expect(seen.status).toBe(200);
    expect(seen.body).toMatchObject({ roomId: room.roomId, name: '크로스 팟', memberCount: 0, expired: false });
  });
});

describe('GET /api/rooms/:roomId', () => {
  it('returns { roomId, name, memberCount, createdAt, expiresAt, expired } for a live room, no auth needed', async () => {
    const created = await request(url, 'POST', '/api/rooms', { token: owner.token, body: { name: '조회 방', ttlSeconds: 3600 } });
    const result = await request(url, 'GET', `/api/rooms/${created.body.roomId}`);
    expect(result.status).toBe(200);
    expect(Object.keys(result.body)).toEqual(
      expect.arrayContaining(['roomId', 'name', 'memberCount', 'createdAt', 'expiresAt', 'expired']),
    );
    expect(result.body).toMatchObject({
      roomId: created.body.roomId,
      name: '조회 방',
      memberCount: 0,
      createdAt: created.body.createdAt,
      expiresAt: created.body.expiresAt,
      expired: false,
    });
    // Upper-case ids name the same room.
    const upper = await request(url, 'GET', `/api/rooms/${created.body.roomId.toUpperCase()}`);
    expect(upper.status).toBe(200);
    expect(upper.body.roomId).toBe(created.body.roomId);
  });

  it('memberCount follows joins and leaves (users, not sockets), on both pods', async () => {
    const room = await createRoom(url, owner);
    const [a, b] = cluster.pods;
    const alice = await makeUser('앨리스');
    const bob = await makeUser('밥');
    const countOn = async (pod: string) => (await request(pod, 'GET', `/api/rooms/${room.roomId}`)).body.memberCount as number;

    const alice1 = await connect(a!.url, alice.token);
    const alice2 = await connect(b!.url, alice.token);
    const bob1 = await connect(b!.url, bob.token);
    await emitAck(alice1, 'join-room', { roomId: room.roomId });
    expect(await countOn(a!.url)).toBe(1);
    // The same user on a second device: still one member.
    await emitAck(alice2, 'join-room', { roomId: room.roomId });
    expect(await countOn(b!.url)).toBe(1);
    await emitAck(bob1, 'join-room', { roomId: room.roomId });
    expect(await countOn(a!.url)).toBe(2);
    // A disconnect does not end membership.
    bob1.close();
    await sleep(100);
    expect(await countOn(a!.url)).toBe(2);
    expect(await emitAck(alice1, 'leave-room', { roomId: room.roomId })).toEqual({ ok: true, data: { roomId: room.roomId, changeSeq: expect.any(Number) } });
    expect(await countOn(b!.url)).toBe(1);
    // Leaving twice changes nothing.
    expect(await emitAck(alice2, 'leave-room', { roomId: room.roomId })).toMatchObject({ ok: false, error: { code: 'NOT_A_MEMBER_LEAVE' } });
    expect(await countOn(a!.url)).toBe(1);
  });

  it('reports an expired room with expired: true', async () => {
    const room = await createRoom(url, owner, { name: '곧 만료', ttlSeconds: 1 });
    const live = await request(url, 'GET', `/api/rooms/${room.roomId}`);
    expect(live.body.expired).toBe(false);
    await sleep(Date.parse(room.expiresAt) - Date.now() + 50);
    const result = await request(url, 'GET', `/api/rooms/${room.roomId}`);
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({ roomId: room.roomId, name: '곧 만료', expiresAt: room.expiresAt, expired: true });
  });

  it('404 방을 찾을 수 없습니다 for an unknown room and for a non-UUID id', async () => {
    for (const id of [randomUUID(), 'not-a-uuid', '1', `${randomUUID()}x`, "'%20or%201=1"]) {
      const result = await request(url, 'GET', `/api/rooms/${id}`);
      expect(result, id).toEqual({ status: 404, body: ROOM_NOT_FOUND });
    }
  });
});

describe('GET /api/rooms', () => {
  /** Every active room, page by page, checking the paging contract on the way. */
  async function listAll(limit: number) {
    const all: { roomId: string; createdAt: string; expired: boolean }[] = [];
    let before: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const query = new URLSearchParams({ limit: String(limit), ...(before ? { before } : {}) });
      const result = await request(url, 'GET', `/api/rooms?${query}`);
      expect(result.status).toBe(200);
      expect(Object.keys(result.body).sort()).toEqual(['hasMore', 'rooms']);
      const rooms = result.body.rooms as typeof all;
      expect(rooms.length).toBeLessThanOrEqual(limit);
      all.push(...rooms);
      if (!result.body.hasMore) return all;
      // hasMore promises a non-empty, full page.
      expect(rooms).toHaveLength(limit);
      before = rooms.at(-1)!.roomId;
    }
    throw new Error('paging did not end');
  }

  it('lists active rooms newest first, with limit / before paging and hasMore, never an expired one', async () => {
    const expiring = await createRoom(url, owner, { name: '목록 만료', ttlSeconds: 1 });
    const mine: string[] = [];
    for (let index = 0; index < 7; index++) {
      mine.push((await createRoom(url, owner, { name: `목록 ${index}` })).roomId);
      await sleep(2); // distinct createdAt
    }
    await sleep(Date.parse(expiring.expiresAt) - Date.now() + 50);

    const all = await listAll(3);
    const ids = all.map((room) => room.roomId);
    expect(new Set(ids).size).toBe(ids.length); // no room twice across pages
    expect(ids).not.toContain(expiring.roomId);
    // (Only mine: another file's one-second room may expire between the query and its view.)
    expect(all.filter((room) => mine.includes(room.roomId)).every((room) => room.expired === false)).toBe(true);
    // Newest first overall, and my rooms in reverse creation order.
    const times = all.map((room) => Date.parse(room.createdAt));
    expect(times).toEqual([...times].sort((x, y) => y - x));
    expect(ids.filter((id) => mine.includes(id))).toEqual([...mine].reverse());
  });

  it('the first page holds the newest rooms, with the room view shape', async () => {
    const newest = await createRoom(url, owner, { name: '가장 최근' });
    const result = await request(url, 'GET', '/api/rooms?limit=1');
    expect(result.status).toBe(200);
    expect(result.body.hasMore).toBe(true);
    expect(result.body.rooms).toHaveLength(1);
    // Another file may create a room meanwhile; the listed one is at least as new as ours.
    const [first] = result.body.rooms;
    expect(Date.parse(first.createdAt)).toBeGreaterThanOrEqual(Date.parse((await request(url, 'GET', `/api/rooms/${newest.roomId}`)).body.createdAt));
    expect(Object.keys(first)).toEqual(expect.arrayContaining(['roomId', 'name', 'memberCount', 'createdAt', 'expiresAt', 'expired']));
  });

  it('defaults to 20 rooms and caps limit at 100', async () => {
    for (let index = 0; index < 21; index++) await createRoom(url, owner, { name: `기본 ${index}` });
    const result = await request(url, 'GET', '/api/rooms');
    expect(result.status).toBe(200);
    expect(result.body.rooms).toHaveLength(20);
    expect(result.body.hasMore).toBe(true);
    expect((await request(url, 'GET', '/api/rooms?limit=100')).status).toBe(200);
    for (const limit of ['101', '9999999999', '99999999999999999999']) {
      expect(await request(url, 'GET', `/api/rooms?limit=${limit}`), limit).toEqual({
        status: 400,
        body: errorBody(400, 'Bad Request', 'limit은 100을 초과할 수 없습니다', 'LIMIT_TOO_LARGE'),
      });
    }
    for (const limit of ['0', '-1', '1.5', 'abc', '']) {
      expect(await request(url, 'GET', `/api/rooms?limit=${limit}`), limit).toEqual({
        status: 400,
        body: errorBody(400, 'Bad Request', 'limit은 1 이상의 정수여야 합니다', 'INVALID_LIMIT'),
      });
    }
  });

  it('rejects a before that names no room (400), rather than restarting from the top', async () => {
    // Demanding-client choice (PROTOCOL is silent): a stale cursor must not loop a pager forever.
    for (const before of [randomUUID(), 'not-a-uuid']) {
      expect(await request(url, 'GET', `/api/rooms?before=${before}`), before).toEqual({
        status: 400,
        body: errorBody(400, 'Bad Request', '잘못된 요청입니다', 'INVALID_REQUEST'),
      });
    }
  });
});

describe('POST /api/auth/token (dev login)', () => {
  it('returns { accessToken, userId, expiresAt } whose token connects and carries the nickname', async () => {
    const login = await request(url, 'POST', '/api/auth/token', { body: { nickname: '개발자' } });
    expect(login.status).toBe(200);
    expect(Object.keys(login.body).sort()).toEqual(['accessToken', 'expiresAt', 'userId']);
    expect(login.body.userId).toMatch(UUID);
    expect(login.body.expiresAt).toMatch(ISO_MS);
    expect(Date.parse(login.body.expiresAt)).toBeGreaterThan(Date.now());

    // The token works over REST ...
    const created = await request(url, 'POST', '/api/rooms', { token: login.body.accessToken, body: { name: '개발 방' } });
    expect(created.status).toBe(201);
    expect(created.body.createdBy).toBe(login.body.userId);
    // ... and on a socket of either pod, as that user with that nickname.
    const socket = await connect(cluster.pods[1]!.url, login.body.accessToken);
    expect(await emitAck(socket, 'join-room', { roomId: created.body.roomId })).toEqual({
      ok: true,
      data: { roomId: created.body.roomId, memberCount: 1, lastChangeSeq: expect.any(Number) },
    });
    const sent = await emitAck(socket, 'send-message', { roomId: created.body.roomId, type: 'text', content: '토큰 확인' });
    expect(sent).toMatchObject({ ok: true, data: { userId: login.body.userId, nicknameMask: '개**' } });
    const history = await request(url, 'GET', `/api/rooms/${created.body.roomId}/messages`);
    expect(history.body.messages[0]).toMatchObject({ userId: login.body.userId, nickname: '개발자', nicknameMask: '개**' });
  });

  it('each login is a new user', async () => {
    const first = await request(url, 'POST', '/api/auth/token', { body: { nickname: '같은이름' } });
    const second = await request(url, 'POST', '/api/auth/token', { body: { nickname: '같은이름' } });
    expect(first.body.userId).not.toBe(second.body.userId);
  });

  it('validates the nickname: 1–30 characters', async () => {
    expect((await request(url, 'POST', '/api/auth/token', { body: { nickname: '가'.repeat(30) } })).status).toBe(200);
    const invalid = errorBody(400, 'Bad Request', '닉네임은 1~30자여야 합니다', 'INVALID_NICKNAME');
    for (const nickname of ['', '   ', '가'.repeat(31), 42, null]) {
      expect(await request(url, 'POST', '/api/auth/token', { body: { nickname } }), String(nickname)).toEqual({ status: 400, body: invalid });
    }
    expect(await request(url, 'POST', '/api/auth/token', { body: {} })).toEqual({ status: 400, body: invalid });
  });

  it('is absent (404, standard error body) when AUTH_DEV_LOGIN is false', async ({ noDevLogin }) => {
    const result = await request(noDevLogin.pods[0]!.url, 'POST', '/api/auth/token', { body: { nickname: '개발자' } });
    expect(result).toEqual({ status: 404, body: errorBody(404, 'Not Found', '요청한 경로를 찾을 수 없습니다', 'NOT_FOUND') });
    // The rest of that pod works.
    const created = await request(noDevLogin.pods[0]!.url, 'POST', '/api/rooms', { token: owner.token, body: { name: '다른 클러스터' } });
    expect(created.status).toBe(201);
  });

  it('signs tokens the gateway accepts: never longer than JWT_MAX_LIFETIME_SECONDS', async ({ shortTokens }) => {
    const shortUrl = shortTokens.pods[0]!.url;
    const login = await request(shortUrl, 'POST', '/api/auth/token', { body: { nickname: '짧은토큰' } });
    expect(login.status).toBe(200);
    // A 24 h token was signed here and every route refused it: 401 인증이 필요합니다.
    expect(Date.parse(login.body.expiresAt) - Date.now()).toBeLessThanOrEqual(600_000);
    expect(Date.parse(login.body.expiresAt) - Date.now()).toBeGreaterThan(590_000);
    const created = await request(shortUrl, 'POST', '/api/rooms', { token: login.body.accessToken, body: { name: '짧은 토큰의 방' } });
    expect(created.status).toBe(201);
    const socket = await connect(shortUrl, login.body.accessToken);
    expect(socket.connected).toBe(true);
    socket.close();
  });
});

describe('REST error bodies: always { statusCode, error, message, code }', () => {
  const notFound = errorBody(404, 'Not Found', '요청한 경로를 찾을 수 없습니다', 'NOT_FOUND');
  const badRequest = errorBody(400, 'Bad Request', '잘못된 요청입니다', 'INVALID_REQUEST');

  it('unknown routes and methods → 404 NOT_FOUND', async () => {
    expect(await request(url, 'GET', '/api/nope')).toEqual({ status: 404, body: notFound });
    expect(await request(url, 'GET', '/api')).toEqual({ status: 404, body: notFound });
    expect(await request(url, 'POST', '/api/messages', { token: owner.token, body: {} })).toEqual({ status: 404, body: notFound });
    expect(await request(url, 'PUT', '/api/rooms')).toEqual({ status: 404, body: notFound });
    expect(await request(url, 'DELETE', '/api/rooms/x/y/z', { token: owner.token })).toEqual({ status: 404, body: notFound });
  });

  it('HEAD answers as GET without a body; OPTIONS from another origin and trailing slashes are other paths (PROTOCOL §13)', async () => {
    const room = await createRoom(url, owner, { name: 'HEAD 방' });
    const head = await fetch(`${url}/api/rooms/${room.roomId}/messages`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await head.text()).toBe('');
    expect((await fetch(`${url}/api/rooms/${randomUUID()}`, { method: 'HEAD' })).status).toBe(404);
    // No CORS for an origin outside CORS_ORIGINS (test/http/cors.test.ts has the allowed ones).
    const preflight = await fetch(`${url}/api/rooms`, {
      method: 'OPTIONS',
      headers: { origin: 'http://elsewhere.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(404);
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(await request(url, 'GET', `/api/rooms/${room.roomId}/`)).toEqual({ status: 404, body: notFound });
    expect(await request(url, 'GET', '/api/rooms/')).toEqual({ status: 404, body: ROOM_NOT_FOUND });
  });

  it('malformed JSON → 400 INVALID_REQUEST, with or without a token', async () => {
    for (const body of ['{"name": ', '{name: "x"}', 'null', '"string"', '[1,2]', '']) {
      const result = await rawRequest(url, 'POST', '/api/rooms', {
        body,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${owner.token}` },
      });
      expect(result.status, body).toBeGreaterThanOrEqual(400);
      expect(result.status, body).toBeLessThan(500);
      expect(Object.keys(result.json as object).sort(), body).toEqual(['code', 'error', 'message', 'statusCode']);
    }
    const broken = await rawRequest(url, 'POST', '/api/rooms', {
      body: '{"name": ',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${owner.token}` },
    });
    expect(broken).toMatchObject({ status: 400, json: badRequest });
    const devLogin = await rawRequest(url, 'POST', '/api/auth/token', { body: '{oops', headers: { 'content-type': 'application/json' } });
    expect(devLogin).toMatchObject({ status: 400, json: badRequest });
  });

  it('an unsupported media type or an oversized body keeps the one shape', async () => {
    const text = await rawRequest(url, 'POST', '/api/rooms', {
      body: 'name=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${owner.token}` },
    });
    expect(text).toMatchObject({ status: 415, json: { statusCode: 415, error: 'Unsupported Media Type', message: '잘못된 요청입니다', code: 'INVALID_REQUEST' } });
    const huge = await rawRequest(url, 'POST', '/api/rooms', {
      body: JSON.stringify({ name: 'x'.repeat(200_000) }),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${owner.token}` },
    });
    expect(huge).toMatchObject({ status: 413, json: { statusCode: 413, error: 'Payload Too Large', message: '잘못된 요청입니다', code: 'INVALID_REQUEST' } });
  });
});
