import { randomUUID } from 'node:crypto';
import type { Sql } from 'postgres';
import { io, type Socket } from 'socket.io-client';
import { describe, expect } from 'vitest';
import { signToken } from '@chat/auth';
import { ERRORS } from '@chat/protocol';
import {
  TEST_JWT_SECRET,
  closeAllSockets,
  connect,
  connectError,
  createRoom,
  emitAck,
  makeUser,
  nextEvent,
  nowSeconds,
  rawJwt,
  type TestSocket,
  type TestUser,
} from '@chat/testing';
import { clusterTest, startCluster } from '../support/index.ts';

/** PROTOCOL §1: connecting and authentication. */

const AUTH_REQUIRED = { message: '인증 토큰이 필요합니다', data: { code: 'AUTH_REQUIRED' } };
const INVALID_TOKEN = { message: '유효하지 않은 토큰입니다', data: { code: 'INVALID_TOKEN' } };
const TOKEN_EXPIRED = { message: '유효하지 않은 토큰입니다', data: { code: 'TOKEN_EXPIRED' } };

const ISSUER = 'https://issuer.chat.test';
const AUDIENCE = 'chat-api';

const it = clusterTest({ pods: 1 }).extend('strict', { scope: 'file' }, async ({}, { onCleanup }) => {
  // A pod configured with JWT_ISSUER / JWT_AUDIENCE.
  const strict = await startCluster(1, { JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE });
  onCleanup(async () => {
    closeAllSockets();
    await strict.close();
  });
  return strict;
});
let url: string;
let strictUrl: string;
let sql: Sql;
it.beforeAll(({ url: first, strict, sql: db }) => {
  url = first;
  strictUrl = strict.pods[0]!.url;
  sql = db;
});

/** The connect_error, reduced to what the protocol fixes: the message and `data.code`. */
async function refusal(baseUrl: string, options: Parameters<typeof io>[1] = {}) {
  const error = await connectError(baseUrl, options);
  return { message: error.message, data: error.data };
}

function validClaims(overrides: Record<string, unknown> = {}) {
  const now = nowSeconds();
  return { sub: randomUUID(), nickname: '김철수', iat: now, exp: now + 600, ...overrides };
}

const hs256 = (claims: Record<string, unknown>, secret = TEST_JWT_SECRET) =>
  rawJwt({ alg: 'HS256', typ: 'JWT' }, claims, secret);

/** Proves who the server thinks the socket is: the sender fields of its own message. */
async function whoAmI(baseUrl: string, socket: Socket, owner: TestUser) {
  const room = await createRoom(baseUrl, owner);
  const joined = await emitAck(socket as TestSocket, 'join-room', { roomId: room.roomId });
  expect(joined.ok).toBe(true);
  const sent = await emitAck<{ userId: string; nicknameMask: string }>(socket as TestSocket, 'send-message', {
    roomId: room.roomId,
    type: 'text',
    content: 'who am i',
  });
  if (!sent.ok) throw new Error(`send failed: ${JSON.stringify(sent)}`);
  return { userId: sent.data.userId, nicknameMask: sent.data.nicknameMask };
}

describe('where the token is read from', () => {
  it('accepts handshake auth.token (the spec client) and knows the user', async () => {
    const user = await makeUser('김철수');
    const socket = await connect(url, user.token);
    expect(socket.connected).toBe(true);
    expect(await whoAmI(url, socket, user)).toEqual({ userId: user.userId, nicknameMask: '김**' });
  });

  it('accepts the query string ?token=', async () => {
    const user = await makeUser('이영희');
    const socket = io(`${url}/socket?token=${encodeURIComponent(user.token)}`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
      expect(await whoAmI(url, socket, user)).toEqual({ userId: user.userId, nicknameMask: '이**' });
    } finally {
      socket.close();
    }
  });

  it('accepts an Authorization: Bearer header (extraHeaders)', async () => {
    const user = await makeUser('박지민');
    const socket = io(`${url}/socket`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      extraHeaders: { authorization: `Bearer ${user.token}` },
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
      expect(await whoAmI(url, socket, user)).toEqual({ userId: user.userId, nicknameMask: '박**' });
    } finally {
      socket.close();
    }
  });

  it('tolerates a "Bearer " prefix in auth.token and in the query, in any case', async () => {
    const user = await makeUser('최유리');
    await expect(connect(url, `Bearer ${user.token}`)).resolves.toBeDefined();
    await expect(connect(url, `bearer ${user.token}`)).resolves.toBeDefined();
    const socket = io(`${url}/socket`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      query: { token: `Bearer ${user.token}` },
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
    } finally {
      socket.close();
    }
  });

  it('reads auth.token first, the query only when auth.token is absent', async () => {
    const user = await makeUser('정하늘');
    // auth.token wins even when the query carries garbage…
    await expect(
      connectError(url, { auth: { token: user.token }, query: { token: 'garbage' } }),
    ).rejects.toThrow('connected');
    // …and a bad auth.token is not rescued by a good query token.
    expect(await refusal(url, { auth: { token: 'garbage' }, query: { token: user.token } })).toEqual(INVALID_TOKEN);
  });
});

describe('refusals', () => {
  it('no token at all → 인증 토큰이 필요합니다 / AUTH_REQUIRED', async () => {
    expect(await refusal(url)).toEqual(AUTH_REQUIRED);
  });

  it('an empty or non-string auth.token counts as no token', async () => {
    expect(await refusal(url, { auth: { token: '' } })).toEqual(AUTH_REQUIRED);
    expect(await refusal(url, { auth: { token: '   ' } })).toEqual(AUTH_REQUIRED);
    expect(await refusal(url, { auth: { token: 12345 } })).toEqual(AUTH_REQUIRED);
  });

  it('a bad signature → INVALID_TOKEN', async () => {
    const forged = hs256(validClaims(), 'another-secret-that-is-long-enough-xyz');
    expect(await refusal(url, { auth: { token: forged } })).toEqual(INVALID_TOKEN);
    // A real token with one signature character changed.
    const user = await makeUser();
    const last = user.token.at(-2) === 'A' ? 'B' : 'A';
    const tampered = `${user.token.slice(0, -2)}${last}${user.token.slice(-1)}`;
    expect(await refusal(url, { auth: { token: tampered } })).toEqual(INVALID_TOKEN);
  });

  it('a claims part changed after signing → INVALID_TOKEN', async () => {
    const user = await makeUser();
    const [header, , signature] = user.token.split('.');
    const claims = Buffer.from(JSON.stringify(validClaims())).toString('base64url');
    expect(await refusal(url, { auth: { token: `${header}.${claims}.${signature}` } })).toEqual(INVALID_TOKEN);
  });

  it.each([
    ['not a JWT', 'not-a-jwt'],
    ['three garbage parts', 'a.b.c'],
    ['two parts', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0'],
    ['header not JSON', `${Buffer.from('{nope').toString('base64url')}.e30.sig`],
  ])('a malformed token (%s) → INVALID_TOKEN', async (_label, token) => {
    expect(await refusal(url, { auth: { token } })).toEqual(INVALID_TOKEN);
  });

  it('an expired token → 유효하지 않은 토큰입니다 / TOKEN_EXPIRED', async () => {
    const now = nowSeconds();
    const token = hs256(validClaims({ iat: now - 3600, exp: now - 60 }));
    expect(await refusal(url, { auth: { token } })).toEqual(TOKEN_EXPIRED);
  });

  it('a token not yet valid (nbf in the future) → INVALID_TOKEN', async () => {
    const token = hs256(validClaims({ nbf: nowSeconds() + 600 }));
    expect(await refusal(url, { auth: { token } })).toEqual(INVALID_TOKEN);
  });

  it('a token without exp → INVALID_TOKEN', async () => {
    const { exp: _exp, ...claims } = validClaims();
    expect(await refusal(url, { auth: { token: hs256(claims) } })).toEqual(INVALID_TOKEN);
  });

  it('a token without sub, or with a sub that is not a UUID → INVALID_TOKEN', async () => {
    const { sub: _sub, ...noSub } = validClaims();
    expect(await refusal(url, { auth: { token: hs256(noSub) } })).toEqual(INVALID_TOKEN);
    expect(await refusal(url, { auth: { token: hs256(validClaims({ sub: 'user-1' })) } })).toEqual(INVALID_TOKEN);
    expect(await refusal(url, { auth: { token: hs256(validClaims({ sub: 42 })) } })).toEqual(INVALID_TOKEN);
  });

  it('an alg:none token, with or without a signature part → INVALID_TOKEN', async () => {
    const claims = validClaims();
    const unsigned = rawJwt({ alg: 'none', typ: 'JWT' }, claims);
    expect(await refusal(url, { auth: { token: unsigned } })).toEqual(INVALID_TOKEN);
    expect(await refusal(url, { auth: { token: unsigned.slice(0, -1) } })).toEqual(INVALID_TOKEN);
    const [header, body] = unsigned.split('.');
    const withHs256Signature = `${header}.${body}.${hs256(claims).split('.')[2]}`;
    expect(await refusal(url, { auth: { token: withHs256Signature } })).toEqual(INVALID_TOKEN);
  });

  it('another algorithm with the right secret (HS512) → INVALID_TOKEN: the algorithm is pinned', async () => {
    const token = rawJwt({ alg: 'HS512', typ: 'JWT' }, validClaims(), TEST_JWT_SECRET);
    expect(await refusal(url, { auth: { token } })).toEqual(INVALID_TOKEN);
  });

  it('a nickname claim outside 1–30 characters, or not a string → INVALID_TOKEN', async () => {
    for (const nickname of ['가'.repeat(31), '', '   ', 42, ['김철수']]) {
      expect(await refusal(url, { auth: { token: hs256(validClaims({ nickname })) } })).toEqual(INVALID_TOKEN);
    }
    // 30 characters (code points) is fine.
    await expect(connect(url, hs256(validClaims({ nickname: '😀'.repeat(30) })))).resolves.toBeDefined();
  });

  it('a nickname claim with control characters (U+0000, BEL, a lone surrogate) → INVALID_TOKEN, not a server error', async () => {
    for (const nickname of ['김\u0000철수', 'bell\u0007', 'half\ud800']) {
      const sub = randomUUID();
      expect(await refusal(url, { auth: { token: hs256(validClaims({ sub, nickname })) } })).toEqual(INVALID_TOKEN);
      expect((await sql`select 1 from users where id = ${sub}`).length).toBe(0);
    }
  });

  it('none of the refused handshakes above stored a user', async () => {
    const sub = randomUUID();
    await refusal(url, { auth: { token: hs256(validClaims({ sub }), 'wrong-secret-wrong-secret-wrong') } });
    await refusal(url, { auth: { token: rawJwt({ alg: 'none' }, validClaims({ sub })) } });
    const rows = await sql`select 1 from users where id = ${sub}`;
    expect(rows.length).toBe(0);
  });
});

describe('issuer and audience, when configured', () => {
  async function strictToken(options: { issuer?: string; audience?: string }) {
    const { token } = await signToken({ secret: TEST_JWT_SECRET, userId: randomUUID(), nickname: '김철수', ...options });
    return token;
  }

  it('accepts the configured iss and aud', async () => {
    await expect(connect(strictUrl, await strictToken({ issuer: ISSUER, audience: AUDIENCE }))).resolves.toBeDefined();
  });

  it('refuses a wrong or missing iss', async () => {
    for (const issuer of ['https://evil.example', undefined]) {
      const token = await strictToken({ audience: AUDIENCE, ...(issuer ? { issuer } : {}) });
      expect(await refusal(strictUrl, { auth: { token } })).toEqual(INVALID_TOKEN);
    }
  });

  it('refuses a wrong or missing aud', async () => {
    for (const audience of ['another-api', undefined]) {
      const token = await strictToken({ issuer: ISSUER, ...(audience ? { audience } : {}) });
      expect(await refusal(strictUrl, { auth: { token } })).toEqual(INVALID_TOKEN);
    }
  });
});

describe('a token without a nickname', () => {
  it('is accepted for a known user, who keeps the stored nickname', async () => {
    const user = await makeUser('박지민');
    (await connect(url, user.token)).close(); // stores the user
    const { token } = await signToken({ secret: TEST_JWT_SECRET, userId: user.userId });
    const socket = await connect(url, token);
    expect(await whoAmI(url, socket, user)).toEqual({ userId: user.userId, nicknameMask: '박**' });
  });

  it('is refused for an unknown user (INVALID_TOKEN), and stores nothing', async () => {
    const userId = randomUUID();
    const { token } = await signToken({ secret: TEST_JWT_SECRET, userId });
    expect(await refusal(url, { auth: { token } })).toEqual(INVALID_TOKEN);
    expect((await sql`select 1 from users where id = ${userId}`).length).toBe(0);
  });

  it('a token with a nickname updates the stored one', async () => {
    const user = await makeUser('박지민');
    (await connect(url, user.token)).close();
    const renamed = await signToken({ secret: TEST_JWT_SECRET, userId: user.userId, nickname: '최유리' });
    const socket = await connect(url, renamed.token);
    // (the room is created with the renamed token too: REST auth also stores the nickname)
    expect(await whoAmI(url, socket, { ...user, token: renamed.token })).toEqual({ userId: user.userId, nicknameMask: '최**' });
    const [row] = await sql<{ nickname: string }[]>`select nickname from users where id = ${user.userId}`;
    expect(row?.nickname).toBe('최유리');
  });
});

describe('a reconnect storm', () => {
  // The handshakes of one loop turn share one query for their users and rooms
  // (sessions.repository.ts): each socket must still get exactly its own user, name and rooms,
  // and a refused handshake must not take its batch mates down with it.
  it('40 sockets at once: each in its own rooms, with its own name; an unknown user among them is refused alone', async () => {
    const owner = await makeUser('방장');
    const room = await createRoom(url, owner);
    const other = await createRoom(url, owner);
    const users = await Promise.all(Array.from({ length: 36 }, (_, i) => makeUser(`폭풍${i}`)));
    await sql`insert into users (id, nickname)
      select id::uuid, nickname from json_to_recordset(${JSON.stringify(users.map((u) => ({ id: u.userId, nickname: u.nickname })))}::text::json)
      as x(id text, nickname text)`;
    // Even users are members of the room, odd ones of the other.
    for (const [i, user] of users.entries()) {
      await sql`insert into room_members (room_id, user_id) values (${i % 2 === 0 ? room.roomId : other.roomId}, ${user.userId})`;
    }
    const nameless = await signToken({ secret: TEST_JWT_SECRET, userId: users[0]!.userId });
    const twoDevices = await signToken({ secret: TEST_JWT_SECRET, userId: users[2]!.userId, nickname: '다른이름' });
    const unknownId = randomUUID();
    const unknown = await signToken({ secret: TEST_JWT_SECRET, userId: unknownId });

    const [refused, ...sockets] = await Promise.all([
      refusal(url, { auth: { token: unknown.token } }),
      ...users.map((user) => connect(url, user.token)),
      connect(url, nameless.token),
      connect(url, twoDevices.token),
    ]);
    expect(refused).toEqual(INVALID_TOKEN);
    expect(sockets.every((socket) => socket.connected)).toBe(true);

    // The owner speaks in `room`: every even user's socket hears it (it was put in the room at
    // connect), no odd user's does.
    const ownerSocket = await connect(url, owner.token);
    expect(await emitAck(ownerSocket, 'join-room', { roomId: room.roomId })).toMatchObject({ ok: true });
    const heard = sockets.map((socket) => nextEvent(socket, 'new-message', 3000).then(() => true, () => false));
    const sent = await emitAck(ownerSocket, 'send-message', { roomId: room.roomId, type: 'text', content: 'storm' });
    expect(sent).toMatchObject({ ok: true });
    const expected = [...users.map((_, i) => i % 2 === 0), true, true];
    expect(await Promise.all(heard)).toEqual(expected);

    // Each socket speaks as its own token says: the nameless one under the stored name, the
    // second device under the name its own token carries.
    const whoSpeaks = async (socket: TestSocket, roomId: string) => {
      const ack = await emitAck<{ userId: string; nicknameMask: string }>(socket, 'send-message', { roomId, type: 'text', content: 'me' });
      if (!ack.ok) throw new Error(JSON.stringify(ack));
      return { userId: ack.data.userId, nicknameMask: ack.data.nicknameMask };
    };
    expect(await whoSpeaks(sockets[36]!, room.roomId)).toEqual({ userId: users[0]!.userId, nicknameMask: '폭**' });
    expect(await whoSpeaks(sockets[37]!, room.roomId)).toEqual({ userId: users[2]!.userId, nicknameMask: '다***' });
    expect(await whoSpeaks(sockets[3]!, other.roomId)).toEqual({ userId: users[3]!.userId, nicknameMask: '폭**' });
    expect((await sql`select 1 from users where id = ${unknownId}`).length).toBe(0);
  });
});

describe('origin and namespace', () => {
  it('refuses a browser Origin outside CORS_ORIGINS before the handshake', async () => {
    const user = await makeUser('김철수');
    const error = await connectError(url, { auth: { token: user.token }, extraHeaders: { origin: 'http://evil.example' } });
    expect(error).toBeInstanceOf(Error);
    // Refused by the transport, not by the auth middleware: no auth code, no user stored.
    expect(error.data?.code).toBeUndefined();
    expect(error.message).not.toBe('유효하지 않은 토큰입니다');
    expect((await sql`select 1 from users where id = ${user.userId}`).length).toBe(0);
  });

  it('accepts the allowed Origin, and a client that sends no Origin', async () => {
    const user = await makeUser('김철수');
    const allowed = io(`${url}/socket`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      auth: { token: user.token },
      extraHeaders: { origin: 'http://allowed.example' },
    });
    try {
      await new Promise<void>((resolve, reject) => {
        allowed.once('connect', resolve);
        allowed.once('connect_error', reject);
      });
    } finally {
      allowed.close();
    }
    // socket.io-client on Node (ws) sends no Origin unless told to: the plain helper is that client.
    await expect(connect(url, user.token)).resolves.toBeDefined();
  });

  it('an allowed Origin without a token is still refused for the token', async () => {
    expect(await refusal(url, { extraHeaders: { origin: 'http://allowed.example' } })).toEqual(AUTH_REQUIRED);
  });

  it('refuses the default namespace "/" even with a valid token', async () => {
    const user = await makeUser('김철수');
    const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token: user.token } });
    try {
      const outcome = await new Promise<string>((resolve) => {
        socket.once('connect', () => resolve('connected'));
        socket.once('connect_error', () => resolve('refused'));
      });
      expect(outcome).toBe('refused');
    } finally {
      socket.close();
    }
  });
});

describe('token expiry while connected', () => {
  it('emits token-expired {} when exp passes, then disconnects the socket', async () => {
    const user = await makeUser('김철수', { expiresInSeconds: 2 });
    const exp = JSON.parse(Buffer.from(user.token.split('.')[1]!, 'base64url').toString()).exp as number;
    const socket = await connect(url, user.token);
    const expired = nextEvent(socket, 'token-expired', 4000);
    const disconnected = new Promise<string>((resolve) => socket.once('disconnect', (reason) => resolve(reason)));
    expect(await expired).toEqual({});
    // Not early: the token really was past its exp.
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000 - 50);
    expect(await disconnected).toBe('io server disconnect');
    expect(socket.connected).toBe(false);
  });

  it('answers the events sent before exp before it disconnects, and refuses one sent after with TOKEN_EXPIRED', async () => {
    const user = await makeUser('김철수', { expiresInSeconds: 3 });
    const room = await createRoom(url, user);
    const socket = await connect(url, user.token);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    // The sends wait on the room's row, held here, until after the token has expired.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    const holder = sql.begin(async (tx) => {
      await tx`select id from rooms where id = ${room.roomId} for update`;
      locked();
      await held;
    });
    await lockTaken;
    const expired = nextEvent(socket, 'token-expired', 5000);
    const disconnected = new Promise<string>((resolve) => socket.once('disconnect', (reason) => resolve(reason)));
    const answers = Array.from({ length: 20 }, (_, i) =>
      emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: `만료 전 ${i}` }, 8000).catch(() => 'no answer'),
    );
    expect(await expired).toEqual({});
    const late = emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '만료 후' }, 8000).catch(() => 'no answer');
    release();
    await holder;
    for (const answer of await Promise.all(answers)) expect(answer).toMatchObject({ ok: true, data: { type: 'text' } });
    expect(await late).toEqual({ ok: false, error: { message: ERRORS.TOKEN_EXPIRED.message, code: 'TOKEN_EXPIRED' } });
    expect(await disconnected).toBe('io server disconnect');
    const [stored] = await sql<{ n: number }[]>`select count(*)::int as n from messages where room_id = ${room.roomId}`;
    expect(stored?.n).toBe(20);
  });
});

describe('sockets per user', () => {
  it('refuses a user past 32 sockets (across the cluster; one pod here) with TOO_MANY_REQUESTS, and takes them again once one closes', async () => {
    const user = await makeUser('김철수');
    const sockets: TestSocket[] = [];
    for (let i = 0; i < 32; i++) sockets.push(await connect(url, user.token));
    const refused = await connectError(url, { auth: { token: user.token } });
    expect({ message: refused.message, data: refused.data }).toEqual({
      message: '요청이 너무 많습니다. 잠시 후 다시 시도해주세요',
      data: { code: 'TOO_MANY_REQUESTS' },
    });
    // Another user is not affected.
    expect((await connect(url, (await makeUser('이영희')).token)).connected).toBe(true);

    sockets.pop()!.close();
    const deadline = Date.now() + 5000;
    let again: TestSocket | null = null;
    while (!again && Date.now() < deadline) {
      again = await connect(url, user.token).catch(() => null);
      if (!again) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(again?.connected).toBe(true);
  });
});
