import { randomUUID } from 'node:crypto';
import type { Sql } from 'postgres';
import type { Socket } from 'socket.io-client';
import { beforeAll, describe, expect } from 'vitest';
import { ERRORS, type ErrorCode } from '@chat/protocol';
import {
  connect,
  createRoom,
  emitAck,
  makeUser,
  nextEvent,
  record,
  request,
  sleep,
  type TestSocket,
  type TestUser,
} from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/** PROTOCOL §4 send-message and §6 socket errors (every row of both tables), on one pod. */

let url: string;
let sql: Sql;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const QUIET_MS = 150;

const it = clusterTest({ pods: 1 });
it.beforeAll(({ url: first, sql: db }) => {
  url = first;
  sql = db;
});

async function joined(user: TestUser, roomId: string): Promise<TestSocket> {
  const socket = await connect(url, user.token);
  const ack = await emitAck(socket, 'join-room', { roomId });
  if (!ack.ok) throw new Error(`join failed: ${JSON.stringify(ack)}`);
  return socket;
}

/** A room with a sender and a second member who watches what is broadcast. */
async function chatRoom(senderName = '김철수') {
  const sender = await makeUser(senderName);
  const watcher = await makeUser('이영희');
  const room = await createRoom(url, sender);
  const senderSocket = await joined(sender, room.roomId);
  const watcherSocket = await joined(watcher, room.roomId);
  return { sender, watcher, roomId: room.roomId, senderSocket, watcherSocket };
}

type NewMessage = {
  messageId: string;
  roomId: string;
  userId: string;
  nicknameMask: string;
  type: string;
  content: string | null;
  imageUrl: string | null;
  createdAt: string;
  seq: number;
  clientMessageId: string | null;
};

async function sendOk(socket: TestSocket, payload: unknown): Promise<NewMessage> {
  const ack = await emitAck<NewMessage>(socket, 'send-message', payload);
  if (!ack.ok) throw new Error(`send failed: ${JSON.stringify(ack)}`);
  return ack.data;
}

function expectWellFormed(message: NewMessage) {
  expect(message.messageId).toMatch(UUID);
  expect(message.createdAt).toMatch(ISO_MS);
  expect(Math.abs(Date.parse(message.createdAt) - Date.now())).toBeLessThan(10_000);
}

describe('send-message happy paths (§4)', () => {
  it('text: the exact new-message to every socket of the room, sender included; ack {ok:true, data: the same}', async () => {
    const { sender, roomId, senderSocket, watcherSocket } = await chatRoom('김철수');
    const toSender = nextEvent(senderSocket, 'new-message');
    const toWatcher = nextEvent(watcherSocket, 'new-message');
    const ack = await emitAck<NewMessage>(senderSocket, 'send-message', { roomId, type: 'text', content: '안녕하세요!' });
    expect(ack.ok).toBe(true);
    if (!ack.ok) return;
    const message = ack.data;
    expectWellFormed(message);
    expect(message).toEqual({
      messageId: message.messageId,
      roomId,
      userId: sender.userId,
      nicknameMask: '김**',
      type: 'text',
      content: '안녕하세요!',
      imageUrl: null,
      createdAt: message.createdAt,
      seq: 1,
      clientMessageId: null,
      changeSeq: expect.any(Number),
    });
    expect(await toSender).toEqual(message);
    expect(await toWatcher).toEqual(message);

    const history = await request(url, 'GET', `/api/rooms/${roomId}/messages`);
    expect(history.body.messages).toEqual([
      {
        messageId: message.messageId,
        roomId,
        seq: 1,
        userId: sender.userId,
        nickname: '김철수',
        nicknameMask: '김**',
        type: 'text',
        content: '안녕하세요!',
        imageUrl: null,
        createdAt: message.createdAt,
      },
    ]);
  });

  it('image: content null, imageUrl kept verbatim', async () => {
    const { roomId, senderSocket, watcherSocket } = await chatRoom();
    const imageUrl = 'https://cdn.example.com/images/cat.png?size=large&v=2#frag';
    const toWatcher = nextEvent(watcherSocket, 'new-message');
    const message = await sendOk(senderSocket, { roomId, type: 'image', imageUrl });
    expectWellFormed(message);
    expect(message).toMatchObject({ type: 'image', content: null, imageUrl, seq: 1 });
    expect(await toWatcher).toEqual(message);
  });

  it('image: http is accepted too, a content field is ignored, exactly 2048 characters is fine', async () => {
    const { roomId, senderSocket } = await chatRoom();
    expect(await sendOk(senderSocket, { roomId, type: 'image', imageUrl: 'http://example.com/a.gif', content: '무시' })).toMatchObject(
      { type: 'image', content: null, imageUrl: 'http://example.com/a.gif' },
    );
    const prefix = 'https://example.com/';
    const long = prefix + 'a'.repeat(2048 - prefix.length);
    expect((await sendOk(senderSocket, { roomId, type: 'image', imageUrl: long })).imageUrl).toBe(long);
    // Characters are code points (§0): 2048 of them, though the emoji make it 4076 UTF-16 units.
    const astral = prefix + '😀'.repeat(2048 - prefix.length);
    expect((await sendOk(senderSocket, { roomId, type: 'image', imageUrl: astral })).imageUrl).toBe(astral);
  });

  it('emoji: single, ZWJ family, flag, keycap and skin tone; imageUrl null', async () => {
    const { roomId, senderSocket, watcherSocket } = await chatRoom();
    const seen = record(watcherSocket, 'new-message');
    const emojis = ['👍', '👨‍👩‍👧', '🇰🇷', '1️⃣', '👋🏽', '❤️', '😀😀😀'];
    for (const content of emojis) {
      const message = await sendOk(senderSocket, { roomId, type: 'emoji', content });
      expect(message).toMatchObject({ type: 'emoji', content, imageUrl: null });
    }
    await sleep(QUIET_MS);
    expect(seen.map((message) => message.content)).toEqual(emojis);
  });

  it('clientMessageId is echoed; unnamed fields are ignored and never stored or echoed', async () => {
    const { roomId, senderSocket, watcherSocket } = await chatRoom();
    const toWatcher = nextEvent(watcherSocket, 'new-message');
    const message = await sendOk(senderSocket, {
      roomId,
      type: 'text',
      content: '<b>그대로</b> & "quoted"',
      clientMessageId: 'client-1',
      userId: randomUUID(),
      nickname: '사칭',
      seq: 999,
      extra: { nested: true },
    });
    expect(Object.keys(message).sort()).toEqual(
      ['changeSeq', 'clientMessageId', 'content', 'createdAt', 'imageUrl', 'messageId', 'nicknameMask', 'roomId', 'seq', 'type', 'userId'],
    );
    expect(message).toMatchObject({ clientMessageId: 'client-1', content: '<b>그대로</b> & "quoted"', seq: 1, nicknameMask: '김**' });
    expect(await toWatcher).toEqual(message);
  });

  it('text keeps tabs, newlines and surrounding spaces verbatim', async () => {
    const { roomId, senderSocket } = await chatRoom();
    const content = '  첫 줄\n\t둘째 줄\r\n  ';
    expect((await sendOk(senderSocket, { roomId, type: 'text', content })).content).toBe(content);
  });

  it('text of exactly 1000 code points is accepted, even when they are 2000 UTF-16 units (emoji)', async () => {
    const { roomId, senderSocket } = await chatRoom();
    for (const content of ['가'.repeat(1000), 'a'.repeat(1000), '😀'.repeat(1000)]) {
      expect((await sendOk(senderSocket, { roomId, type: 'text', content })).content).toBe(content);
    }
  });

  it('seq increases by one per message, gap-free, in the order the watcher receives them', async () => {
    const { roomId, senderSocket, watcherSocket } = await chatRoom();
    const seen = record(watcherSocket, 'new-message');
    const acks: number[] = [];
    for (let i = 0; i < 5; i++) acks.push((await sendOk(senderSocket, { roomId, type: 'text', content: `#${i}` })).seq);
    expect(acks).toEqual([1, 2, 3, 4, 5]);

    // Concurrent senders (group commit): still a gap-free run, delivered in seq order.
    const others = await Promise.all(['박지민', '최유리', '정하늘'].map(async (name) => joined(await makeUser(name), roomId)));
    const burst = await Promise.all(
      others.flatMap((socket, s) => [0, 1, 2, 3].map((i) => sendOk(socket, { roomId, type: 'text', content: `${s}-${i}` }))),
    );
    expect(burst.map((message) => message.seq).sort((a, b) => a - b)).toEqual([6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]);
    await sleep(QUIET_MS);
    expect(seen.map((message) => message.seq)).toEqual(Array.from({ length: 17 }, (_, i) => i + 1));
    // Message ids are unique, and the stored rows carry the same numbers.
    expect(new Set(seen.map((message) => message.messageId)).size).toBe(17);
    const rows = await sql<{ seq: number }[]>`select seq::int as seq from messages where room_id = ${roomId} order by seq`;
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: 17 }, (_, i) => i + 1));
  });

  it('seq is per room', async () => {
    const a = await chatRoom();
    const roomB = await createRoom(url, a.sender);
    await emitAck(a.senderSocket, 'join-room', { roomId: roomB.roomId });
    await sendOk(a.senderSocket, { roomId: a.roomId, type: 'text', content: 'A1' });
    await sendOk(a.senderSocket, { roomId: a.roomId, type: 'text', content: 'A2' });
    expect((await sendOk(a.senderSocket, { roomId: roomB.roomId, type: 'text', content: 'B1' })).seq).toBe(1);
  });

  it('works without an ack callback (plain emit): the sender still gets new-message', async () => {
    const { roomId, senderSocket } = await chatRoom();
    const own = nextEvent(senderSocket, 'new-message');
    (senderSocket as unknown as Socket).emit('send-message', { roomId, type: 'text', content: 'no ack' });
    expect(await own).toMatchObject({ roomId, content: 'no ack', seq: 1 });
  });
});

// ---------------------------------------------------------------------------------------------
// §6 errors

interface Fixture {
  sender: TestUser;
  senderSocket: TestSocket;
  watcherSocket: TestSocket;
  /** A live room both are members of. */
  roomId: string;
  /** A live room the sender is NOT a member of (the watcher is). */
  foreignRoomId: string;
  /** A room the sender joined, since expired. */
  expiredRoomId: string;
  /** An expired room the sender is not a member of. */
  expiredForeignRoomId: string;
  /** Every new-message the watcher received, in any of these rooms. */
  watcherMessages: unknown[];
}
let fx: Fixture;

async function setUpErrorFixture(): Promise<Fixture> {
  const sender = await makeUser('김철수');
  const watcher = await makeUser('이영희');
  const [room, foreign, expired, expiredForeign] = await Promise.all([
    createRoom(url, sender),
    createRoom(url, watcher),
    createRoom(url, sender, { ttlSeconds: 1 }),
    createRoom(url, watcher, { ttlSeconds: 1 }),
  ]);
  const senderSocket = await connect(url, sender.token);
  const watcherSocket = await connect(url, watcher.token);
  for (const roomId of [room.roomId, expired.roomId]) {
    expect((await emitAck(senderSocket, 'join-room', { roomId })).ok).toBe(true);
  }
  for (const roomId of [room.roomId, foreign.roomId, expired.roomId, expiredForeign.roomId]) {
    expect((await emitAck(watcherSocket, 'join-room', { roomId })).ok).toBe(true);
  }
  // ttlSeconds: 1 → expired a second after creation.
  const wait = Date.parse(expired.expiresAt) - Date.now();
  const waitForeign = Date.parse(expiredForeign.expiresAt) - Date.now();
  await sleep(Math.max(wait, waitForeign, 0) + 200);
  return {
    sender,
    senderSocket,
    watcherSocket,
    roomId: room.roomId,
    foreignRoomId: foreign.roomId,
    expiredRoomId: expired.roomId,
    expiredForeignRoomId: expiredForeign.roomId,
    watcherMessages: record(watcherSocket, 'new-message'),
  };
}

/** Sends `args` as the event's arguments (so "no payload at all" is expressible) with an ack. */
function emitRawWithAck(socket: TestSocket, event: string, args: unknown[]) {
  return (socket as unknown as Socket).timeout(5000).emitWithAck(event, ...args) as Promise<unknown>;
}

/**
 * The failure contract of §6: exactly one `error` {message, code, event} to the caller, the
 * ack {ok:false, error:{message, code}}, and — checked by the callers — nothing stored or sent.
 */
async function expectFailure(
  socket: TestSocket,
  event: 'join-room' | 'leave-room' | 'send-message',
  args: unknown[],
  code: ErrorCode,
  message: string,
) {
  // The catalog must carry the protocol's byte-exact message for this code.
  expect(ERRORS[code].message).toBe(message);
  const errors: unknown[] = [];
  const listener = (payload: unknown) => errors.push(payload);
  socket.on('error', listener as never);
  try {
    const ack = await emitRawWithAck(socket, event, args);
    expect(ack).toEqual({ ok: false, error: { message, code } });
    // The error event was written before the ack on the same connection: it is here already.
    expect(errors).toEqual([{ message, code, event }]);
  } finally {
    socket.off('error', listener as never);
  }
}

const M = {
  ROOM_ID_REQUIRED: 'roomId가 필요합니다',
  ROOM_NOT_FOUND: '방을 찾을 수 없습니다',
  ROOM_EXPIRED: '만료된 방입니다',
  NOT_A_MEMBER_LEAVE: '참여 중인 방이 아닙니다',
  NOT_A_MEMBER: '방에 참여 중이 아닙니다',
  INVALID_MESSAGE_TYPE: '유효하지 않은 메시지 타입입니다',
  CONTENT_REQUIRED: '메시지 내용을 입력해주세요',
  MESSAGE_TOO_LONG: '메시지는 1000자 이하여야 합니다',
  INVALID_IMAGE_URL: '유효한 이미지 URL이 필요합니다',
  INVALID_EMOJI: '유효하지 않은 이모지입니다',
  INVALID_CONTENT: '유효하지 않은 메시지 내용입니다',
} as const satisfies Partial<Record<ErrorCode, string>>;
type Code = keyof typeof M;

type RoomKey = 'roomId' | 'foreignRoomId' | 'expiredRoomId' | 'expiredForeignRoomId';
/** A payload template: `$room` placeholders name which fixture room goes in. */
type Case = [label: string, code: Code, build: (f: Fixture) => unknown[]];

const room = (key: RoomKey, rest: Record<string, unknown> = {}) => (f: Fixture) => [{ roomId: f[key], ...rest }];
const text = (content: unknown, key: RoomKey = 'roomId') => room(key, { type: 'text', content });

const sendCases: Case[] = [
  // roomId
  ['no payload at all', 'ROOM_ID_REQUIRED', () => []],
  ['payload null', 'ROOM_ID_REQUIRED', () => [null]],
  ['payload a string', 'ROOM_ID_REQUIRED', () => ['hello']],
  ['payload a number', 'ROOM_ID_REQUIRED', () => [42]],
  ['payload an array', 'ROOM_ID_REQUIRED', (f) => [[f.roomId, 'text', 'hi']]],
  ['roomId missing', 'ROOM_ID_REQUIRED', () => [{ type: 'text', content: 'hi' }]],
  ['roomId empty', 'ROOM_ID_REQUIRED', () => [{ roomId: '', type: 'text', content: 'hi' }]],
  ['roomId null', 'ROOM_ID_REQUIRED', () => [{ roomId: null, type: 'text', content: 'hi' }]],
  ['roomId a number', 'ROOM_ID_REQUIRED', () => [{ roomId: 12345, type: 'text', content: 'hi' }]],
  ['roomId an object', 'ROOM_ID_REQUIRED', (f) => [{ roomId: { id: f.roomId }, type: 'text', content: 'hi' }]],
  ['roomId an array of the id', 'ROOM_ID_REQUIRED', (f) => [{ roomId: [f.roomId], type: 'text', content: 'hi' }]],
  // room exists
  ['roomId not a UUID', 'ROOM_NOT_FOUND', () => [{ roomId: 'room-1', type: 'text', content: 'hi' }]],
  ['roomId a UUID with junk around it', 'ROOM_NOT_FOUND', (f) => [{ roomId: ` ${f.roomId}`, type: 'text', content: 'hi' }]],
  ['roomId an SQL-ish string', 'ROOM_NOT_FOUND', () => [{ roomId: "' or 1=1 --", type: 'text', content: 'hi' }]],
  ['room does not exist', 'ROOM_NOT_FOUND', () => [{ roomId: randomUUID(), type: 'text', content: 'hi' }]],
  // expiry
  ['room expired (member)', 'ROOM_EXPIRED', text('hi', 'expiredRoomId')],
  // membership
  ['not a member', 'NOT_A_MEMBER', text('hi', 'foreignRoomId')],
  // type
  ['type missing', 'INVALID_MESSAGE_TYPE', room('roomId', { content: 'hi' })],
  ['type unknown', 'INVALID_MESSAGE_TYPE', room('roomId', { type: 'video', content: 'hi' })],
  ['type upper case', 'INVALID_MESSAGE_TYPE', room('roomId', { type: 'TEXT', content: 'hi' })],
  ['type not a string', 'INVALID_MESSAGE_TYPE', room('roomId', { type: 1, content: 'hi' })],
  ['type null', 'INVALID_MESSAGE_TYPE', room('roomId', { type: null, content: 'hi' })],
  // content (text)
  ['text without content', 'CONTENT_REQUIRED', room('roomId', { type: 'text' })],
  ['text content null', 'CONTENT_REQUIRED', text(null)],
  ['text content empty', 'CONTENT_REQUIRED', text('')],
  ['text content blank', 'CONTENT_REQUIRED', text('   ')],
  ['text content only newlines and tabs', 'CONTENT_REQUIRED', text('\n\t\r\n')],
  ['text content only an ideographic space', 'CONTENT_REQUIRED', text('\u3000')],
  ['text content a number', 'CONTENT_REQUIRED', text(123)],
  ['text content an object', 'CONTENT_REQUIRED', text({ toString: 'x' })],
  // content (emoji)
  ['emoji without content', 'CONTENT_REQUIRED', room('roomId', { type: 'emoji' })],
  ['emoji content blank', 'CONTENT_REQUIRED', room('roomId', { type: 'emoji', content: '  ' })],
  // length
  ['text of 1001 ASCII characters', 'MESSAGE_TOO_LONG', text('a'.repeat(1001))],
  ['text of 1001 Hangul syllables', 'MESSAGE_TOO_LONG', text('가'.repeat(1001))],
  ['text of 1001 emoji (code points)', 'MESSAGE_TOO_LONG', text('😀'.repeat(1001))],
  ['text of 1001 code points in 501 graphemes (e + U+0301)', 'MESSAGE_TOO_LONG', text('e\u0301'.repeat(500) + 'a')],
  // [ext] image URL
  ['image without imageUrl', 'INVALID_IMAGE_URL', room('roomId', { type: 'image' })],
  ['image with content instead of imageUrl', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', content: 'https://example.com/a.png' })],
  ['imageUrl empty', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: '' })],
  ['imageUrl not a string', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 42 })],
  ['imageUrl javascript:', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'javascript:alert(1)' })],
  ['imageUrl JavaScript: mixed case', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'JaVaScRiPt:alert(1)//https://x.png' })],
  ['imageUrl data:', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'data:image/png;base64,iVBORw0KGgo=' })],
  ['imageUrl ftp:', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'ftp://example.com/a.png' })],
  ['imageUrl file:', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'file:///etc/passwd' })],
  ['imageUrl relative', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: '/images/a.png' })],
  ['imageUrl protocol-relative', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: '//example.com/a.png' })],
  ['imageUrl not a URL', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'not a url' })],
  ['imageUrl with user:password', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'https://user:secret@example.com/a.png' })],
  ['imageUrl with a user only', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'https://user@example.com/a.png' })],
  ['imageUrl with empty credentials', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'https://@example.com/a.png' })],
  ['imageUrl with a backslash before an @', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'https://example.com\\@evil.example/a.png' })],
  ['imageUrl without // after the scheme', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'https:example.com/a.png' })],
  ['imageUrl with /// after the scheme', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'https:///example.com/a.png' })],
  ['imageUrl with surrounding spaces', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: ' https://example.com/a.png ' })],
  ['imageUrl with a control character', 'INVALID_IMAGE_URL', room('roomId', { type: 'image', imageUrl: 'https://example.com/a\u0000.png' })],
  [
    'imageUrl of 2049 characters',
    'INVALID_IMAGE_URL',
    room('roomId', { type: 'image', imageUrl: 'https://example.com/' + 'a'.repeat(2049 - 'https://example.com/'.length) }),
  ],
  [
    'imageUrl of 2049 characters, emoji among them',
    'INVALID_IMAGE_URL',
    room('roomId', { type: 'image', imageUrl: 'https://example.com/' + '😀'.repeat(2049 - 'https://example.com/'.length) }),
  ],
  // [ext] emoji content
  ['emoji that is plain text', 'INVALID_EMOJI', room('roomId', { type: 'emoji', content: 'abc' })],
  ['emoji mixed with text', 'INVALID_EMOJI', room('roomId', { type: 'emoji', content: '😀a' })],
  ['emoji a lone digit', 'INVALID_EMOJI', room('roomId', { type: 'emoji', content: '1' })],
  ['emoji a lone #', 'INVALID_EMOJI', room('roomId', { type: 'emoji', content: '#' })],
  ['emoji Hangul', 'INVALID_EMOJI', room('roomId', { type: 'emoji', content: '하하' })],
  ['emoji of 17 code points', 'INVALID_EMOJI', room('roomId', { type: 'emoji', content: '😀'.repeat(17) })],
  ['emoji with U+0000', 'INVALID_EMOJI', room('roomId', { type: 'emoji', content: '😀\u0000' })],
  ['emoji with digits around it', 'INVALID_EMOJI', room('roomId', { type: 'emoji', content: '9😀123' })],
  ['emoji a lone keycap mark', 'INVALID_EMOJI', room('roomId', { type: 'emoji', content: '\u20e3' })],
  // [ext] control characters
  ['text with U+0000', 'INVALID_CONTENT', text('hello\u0000world')],
  ['text with U+0007 (bell)', 'INVALID_CONTENT', text('ding\u0007')],
  ['text with U+001B (escape)', 'INVALID_CONTENT', text('\u001b[31mred')],
  ['text with U+007F (delete)', 'INVALID_CONTENT', text('del\u007f')],
  ['text with U+0085 (C1 control)', 'INVALID_CONTENT', text('next\u0085line')],
  ['text with a lone high surrogate', 'INVALID_CONTENT', text('broken \ud83d')],
  ['text with a lone low surrogate', 'INVALID_CONTENT', text('broken \ude00 too')],
];

/** When several rules fail, the first in §6's order is reported. */
const precedenceCases: Case[] = [
  ['roomId missing + bad type + no content', 'ROOM_ID_REQUIRED', () => [{ type: 'video' }]],
  ['roomId not a string + everything else wrong', 'ROOM_ID_REQUIRED', () => [{ roomId: 7, type: 'emoji', content: 'abc' }]],
  ['unknown room + bad type', 'ROOM_NOT_FOUND', () => [{ roomId: randomUUID(), type: 'video' }]],
  ['non-UUID roomId + bad type', 'ROOM_NOT_FOUND', () => [{ roomId: 'x', type: 'video' }]],
  ['expired room, not a member, bad type', 'ROOM_EXPIRED', room('expiredForeignRoomId', { type: 'video' })],
  ['expired room (member) + blank content', 'ROOM_EXPIRED', text(' ', 'expiredRoomId')],
  ['not a member + bad type', 'NOT_A_MEMBER', room('foreignRoomId', { type: 'video' })],
  ['not a member + too long', 'NOT_A_MEMBER', text('a'.repeat(1001), 'foreignRoomId')],
  ['bad type + missing content', 'INVALID_MESSAGE_TYPE', room('roomId', { type: 'video' })],
  ['bad type + bad imageUrl', 'INVALID_MESSAGE_TYPE', room('roomId', { type: 'gif', imageUrl: 'javascript:1' })],
  ['blank content + bad clientMessageId', 'CONTENT_REQUIRED', room('roomId', { type: 'text', content: '', clientMessageId: 5 })],
  ['too long + bad clientMessageId', 'MESSAGE_TOO_LONG', room('roomId', { type: 'text', content: 'a'.repeat(1001), clientMessageId: {} })],
];

const joinCases: Case[] = [
  ['no payload at all', 'ROOM_ID_REQUIRED', () => []],
  ['payload not an object', 'ROOM_ID_REQUIRED', () => ['room']],
  ['roomId missing', 'ROOM_ID_REQUIRED', () => [{}]],
  ['roomId not a string', 'ROOM_ID_REQUIRED', () => [{ roomId: 1 }]],
  ['roomId not a UUID', 'ROOM_NOT_FOUND', () => [{ roomId: 'lobby' }]],
  ['room does not exist', 'ROOM_NOT_FOUND', () => [{ roomId: randomUUID() }]],
  ['room expired', 'ROOM_EXPIRED', room('expiredForeignRoomId')],
  ['room expired, already a member', 'ROOM_EXPIRED', room('expiredRoomId')],
];

const leaveCases: Case[] = [
  ['no payload at all', 'ROOM_ID_REQUIRED', () => []],
  ['payload null', 'ROOM_ID_REQUIRED', () => [null]],
  ['roomId missing', 'ROOM_ID_REQUIRED', () => [{}]],
  ['roomId not a string', 'ROOM_ID_REQUIRED', () => [{ roomId: true }]],
  ['roomId not a UUID', 'ROOM_NOT_FOUND', () => [{ roomId: 'lobby' }]],
  ['room does not exist', 'ROOM_NOT_FOUND', () => [{ roomId: randomUUID() }]],
  ['not a member', 'NOT_A_MEMBER_LEAVE', room('foreignRoomId')],
  ['not a member of an expired room', 'NOT_A_MEMBER_LEAVE', room('expiredForeignRoomId')],
];

describe('socket errors (§6)', () => {
  let before: string;

  beforeAll(async () => {
    fx = await setUpErrorFixture();
  });

  /** Message rows, memberships and member counts of the fixture's rooms, as one string. */
  async function state(): Promise<string> {
    const ids = [fx.roomId, fx.foreignRoomId, fx.expiredRoomId, fx.expiredForeignRoomId];
    const rows = await sql`
      select r.id, r.member_count, r.last_seq,
             (select count(*)::int from messages m where m.room_id = r.id) as messages,
             (select coalesce(string_agg(user_id::text, ',' order by user_id), '') from room_members rm where rm.room_id = r.id) as members
      from rooms r where r.id in ${sql(ids)} order by r.id`;
    expect(rows.length).toBe(4);
    return JSON.stringify(rows);
  }

  async function snapshot() {
    before = await state();
  }

  /**
   * Nothing stored, nothing broadcast, memberships untouched. A broadcast would have been
   * written to the watcher's connection before the failing event's ack was; a round trip on
   * the watcher's own connection afterwards therefore flushes it (no guessing with sleeps).
   */
  async function expectNoSideEffects() {
    expect(await emitAck(fx.watcherSocket, 'typing', null)).toEqual({ ok: true, data: {} });
    expect(fx.watcherMessages).toEqual([]);
    expect(await state()).toBe(before);
  }

  describe('send-message', () => {
    it.each(sendCases)('%s → %s', async (_label, code, build) => {
      await snapshot();
      await expectFailure(fx.senderSocket, 'send-message', build(fx), code, M[code]);
      await expectNoSideEffects();
    });
  });

  describe('precedence: roomId → room exists → not expired → membership → type → content → length', () => {
    it.each(precedenceCases)('%s → %s', async (_label, code, build) => {
      await snapshot();
      await expectFailure(fx.senderSocket, 'send-message', build(fx), code, M[code]);
      await expectNoSideEffects();
    });
  });

  describe('join-room', () => {
    it.each(joinCases)('%s → %s', async (_label, code, build) => {
      await snapshot();
      const watcherJoined = record(fx.watcherSocket, 'user-joined');
      await expectFailure(fx.senderSocket, 'join-room', build(fx), code, M[code]);
      await expectNoSideEffects();
      expect(watcherJoined).toEqual([]);
    });
  });

  describe('leave-room', () => {
    it.each(leaveCases)('%s → %s', async (_label, code, build) => {
      await snapshot();
      const watcherLeft = record(fx.watcherSocket, 'user-left');
      await expectFailure(fx.senderSocket, 'leave-room', build(fx), code, M[code]);
      await expectNoSideEffects();
      expect(watcherLeft).toEqual([]);
    });
  });

  it('after all of that, no new-message reached the watcher even with time to arrive', async () => {
    await sleep(300);
    expect(fx.watcherMessages).toEqual([]);
  });

  it('the socket stays usable after every failure above', async () => {
    const toWatcher = nextEvent(fx.watcherSocket, 'new-message');
    const message = await sendOk(fx.senderSocket, { roomId: fx.roomId, type: 'text', content: '아직 살아있어요' });
    expect(message).toMatchObject({ seq: 1, userId: fx.sender.userId });
    expect(await toWatcher).toEqual(message);
    fx.watcherMessages.length = 0;
  });

  it('the error event goes to the caller only, not to the other members', async () => {
    const watcherErrors = record(fx.watcherSocket, 'error');
    await expectFailure(fx.senderSocket, 'send-message', [{ roomId: fx.roomId, type: 'text', content: '' }], 'CONTENT_REQUIRED', M.CONTENT_REQUIRED);
    await sleep(QUIET_MS);
    expect(watcherErrors).toEqual([]);
  });

  it('a failure without an ack callback still answers with the error event', async () => {
    const errorSeen = nextEvent(fx.senderSocket, 'error');
    (fx.senderSocket as unknown as Socket).emit('send-message', { roomId: fx.roomId, type: 'nope' });
    expect(await errorSeen).toEqual({ message: M.INVALID_MESSAGE_TYPE, code: 'INVALID_MESSAGE_TYPE', event: 'send-message' });
  });

  it('a member may still leave an expired room (the spec lists no expiry error for leave)', async () => {
    const leftSeen = nextEvent(fx.senderSocket, 'room-left');
    expect(await emitAck(fx.senderSocket, 'leave-room', { roomId: fx.expiredRoomId })).toEqual({
      ok: true,
      data: { roomId: fx.expiredRoomId, changeSeq: expect.any(Number) },
    });
    expect(await leftSeen).toEqual({ roomId: fx.expiredRoomId, changeSeq: expect.any(Number) });
  });

  it('a user who left can no longer send: 방에 참여 중이 아닙니다', async () => {
    const user = await makeUser('박지민');
    const socket = await joined(user, fx.roomId);
    expect((await emitAck(socket, 'leave-room', { roomId: fx.roomId })).ok).toBe(true);
    await snapshot();
    await expectFailure(socket, 'send-message', [{ roomId: fx.roomId, type: 'text', content: 'hi' }], 'NOT_A_MEMBER', M.NOT_A_MEMBER);
    await expectNoSideEffects();
    // …and leaving twice is "not a member" for leave.
    await expectFailure(socket, 'leave-room', [{ roomId: fx.roomId }], 'NOT_A_MEMBER_LEAVE', M.NOT_A_MEMBER_LEAVE);
  });
});
