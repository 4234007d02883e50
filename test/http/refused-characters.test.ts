import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { signToken } from '@chat/auth';
import { buildGateway, loadConfig, type Gateway } from '@chat/gateway';
import {
  TEST_JWT_SECRET,
  closeAllSockets,
  connect,
  connectError,
  createRoom,
  emitAck,
  makeUser,
  request,
  uniquePrefix,
  type TestUser,
} from '@chat/testing';

/**
 * Issue 18, point 3: room names, nicknames and message text refuse the same characters (docs/
 * PROTOCOL.md §11): C0/C1 controls, unpaired surrogates, bidirectional embeddings, overrides and
 * isolates (U+202A–U+202E, U+2066–U+2069), and text with nothing visible in it (only spaces and
 * invisible format characters such as U+200B, U+FEFF, U+2060, U+3164). Each is the protocol's
 * exact 400, nothing is stored, and nothing is logged at error level (U+0000 in a room name
 * used to reach the INSERT, answer 500 and log the statement's parameters).
 *
 * One pod built here with a logger that keeps what it writes at warn and above.
 */

const logged: { level: number; msg?: string }[] = [];
let gateway: Gateway;
let url: string;
let sql: postgres.Sql;
let owner: TestUser;

beforeAll(async () => {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    POD_NAME: 'test-characters-pod',
    DATABASE_URL: inject('databaseUrl'),
    REDIS_URL: inject('redisUrl'),
    REDIS_PREFIX: uniquePrefix('chars'),
    JWT_SECRET: TEST_JWT_SECRET,
    AUTH_DEV_LOGIN: 'true',
    DATABASE_POOL_SIZE: '4',
    ROOM_CREATE_RATE_LIMIT_PER_MINUTE: '1000',
    HTTP_RATE_LIMIT_PER_MINUTE: '10000',
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logged.push(JSON.parse(line));
      done();
    },
  });
  gateway = await buildGateway(config, { logger: pino({ level: 'warn' }, sink) });
  await gateway.http.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(gateway.http.server.address() as AddressInfo).port}`;
  sql = postgres(inject('databaseUrl'), { max: 2, onnotice: () => {} });
  owner = await makeUser('문자검사');
});

afterAll(async () => {
  closeAllSockets();
  await gateway?.close();
  await sql?.end();
});

const errorsLogged = () => logged.filter((line) => line.level >= 50);

/** Each refused the same way wherever it appears (the label says which rule). */
const REFUSED: [string, string][] = [
  ['U+0000', 'a\u0000b'],
  ['BEL', 'a\u0007b'],
  ['ESC', '\u001b[31mred'],
  ['DEL', 'a\u007fb'],
  ['C1 (U+0085)', 'a\u0085b'],
  ['a lone surrogate', 'a\ud800b'],
  ['U+202A (LRE)', 'a\u202ab'],
  ['U+202B (RLE)', 'a\u202bb'],
  ['U+202C (PDF)', 'a\u202cb'],
  ['U+202D (LRO)', 'a\u202db'],
  ['U+202E (RLO)', 'exe.\u202Etxt'],
  ['U+2066 (LRI)', 'a\u2066b'],
  ['U+2067 (RLI)', 'a\u2067b'],
  ['U+2068 (FSI)', 'a\u2068b'],
  ['U+2069 (PDI)', 'a\u2069b'],
];

const INVISIBLE: [string, string][] = [
  ['U+200B only', '\u200B'],
  ['U+FEFF and U+2060', '\uFEFF\u2060'],
  ['spaces around U+200B', ' \u200B  '],
  ['U+3164 (Hangul filler)', '\u3164\u3164'],
  ['U+00A0 and U+200D', '\u00A0\u200D'],
];

/** Visible text that uses format characters legitimately: kept as sent. */
const ACCEPTED: [string, string][] = [
  ['right-to-left script', 'שלום עולם'],
  ['an emoji ZWJ sequence', '👨‍👩‍👧 가족'],
  ['a left-to-right mark between words', 'abc\u200Edef'],
  ['a tab inside', 'a\tb'],
];

const INVALID_ROOM_NAME = { statusCode: 400, error: 'Bad Request', message: '방 이름은 1~50자여야 합니다', code: 'INVALID_ROOM_NAME' };
const INVALID_NICKNAME = { statusCode: 400, error: 'Bad Request', message: '닉네임은 1~30자여야 합니다', code: 'INVALID_NICKNAME' };

describe('room names (POST /api/rooms)', () => {
  it.each([...REFUSED, ...INVISIBLE])('refuses %s: 400 INVALID_ROOM_NAME, nothing stored, nothing logged as an error', async (_label, name) => {
    const before = errorsLogged().length;
    const result = await request(url, 'POST', '/api/rooms', { token: owner.token, body: { name } });
    expect(result).toEqual({ status: 400, body: INVALID_ROOM_NAME });
    const [stored] = await sql<{ count: number }[]>`select count(*)::int as count from rooms where created_by = ${owner.userId}`;
    expect(stored!.count).toBe(0);
    expect(errorsLogged().slice(before)).toEqual([]);
  });

  it.each(ACCEPTED)('accepts %s, stored as sent', async (_label, name) => {
    const result = await request(url, 'POST', '/api/rooms', { token: (await makeUser('허용')).token, body: { name } });
    expect(result.status).toBe(201);
    expect(result.body.name).toBe(name);
  });
});

describe('nicknames', () => {
  it.each([...REFUSED, ...INVISIBLE])('the development login refuses %s: 400 INVALID_NICKNAME', async (_label, nickname) => {
    const result = await request(url, 'POST', '/api/auth/token', { body: { nickname } });
    expect(result).toEqual({ status: 400, body: INVALID_NICKNAME });
  });

  it.each([...REFUSED, ...INVISIBLE])('a token whose nickname claim has %s is refused (handshake and REST), storing no user', async (_label, nickname) => {
    const userId = randomUUID();
    const { token } = await signToken({ secret: TEST_JWT_SECRET, userId, nickname: `${nickname}` });
    const refused = await connectError(url, { auth: { token } });
    expect({ message: refused.message, data: refused.data }).toEqual({ message: '유효하지 않은 토큰입니다', data: { code: 'INVALID_TOKEN' } });
    const rest = await request(url, 'POST', '/api/rooms', { token, body: { name: '방' } });
    expect(rest.status).toBe(401);
    const [stored] = await sql<{ count: number }[]>`select count(*)::int as count from users where id = ${userId}`;
    expect(stored!.count).toBe(0);
  });

  it.each(ACCEPTED)('accepts %s in a nickname', async (_label, nickname) => {
    const result = await request(url, 'POST', '/api/auth/token', { body: { nickname } });
    expect(result.status).toBe(200);
  });
});

describe('message text (send-message)', () => {
  async function memberSocket() {
    const user = await makeUser('보내는이');
    const room = await createRoom(url, user);
    const socket = await connect(url, user.token);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    return { user, room, socket };
  }

  async function storedMessages(roomId: string) {
    const [row] = await sql<{ count: number }[]>`select count(*)::int as count from messages where room_id = ${roomId}`;
    return row!.count;
  }

  it.each(REFUSED.filter(([label]) => label.startsWith('U+202') || label.startsWith('U+206')))(
    'refuses %s in content: INVALID_CONTENT, nothing stored',
    async (_label, content) => {
      const { room, socket } = await memberSocket();
      const ack = await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content });
      expect(ack).toEqual({ ok: false, error: { message: '유효하지 않은 메시지 내용입니다', code: 'INVALID_CONTENT' } });
      expect(await storedMessages(room.roomId)).toBe(0);
    },
  );

  it.each(INVISIBLE)('refuses content of %s as empty: CONTENT_REQUIRED, nothing stored', async (_label, content) => {
    const { room, socket } = await memberSocket();
    const ack = await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content });
    expect(ack).toEqual({ ok: false, error: { message: '메시지 내용을 입력해주세요', code: 'CONTENT_REQUIRED' } });
    expect(await storedMessages(room.roomId)).toBe(0);
  });

  it('accepts visible text that uses format characters legitimately', async () => {
    const { room, socket } = await memberSocket();
    for (const [label, content] of ACCEPTED) {
      const ack = await emitAck<{ content: string }>(socket, 'send-message', { roomId: room.roomId, type: 'text', content });
      expect(ack, label).toMatchObject({ ok: true, data: { content } });
    }
    expect(errorsLogged()).toEqual([]);
  });
});
