import { randomUUID } from 'node:crypto';
import type { Sql } from 'postgres';
import { describe, expect } from 'vitest';
import { ERRORS, type AckResponse, type NewMessagePayload, type ServerToClientEvents } from '@chat/protocol';
import {
  connect,
  countMessageRows,
  createRoom,
  emitAck,
  emitRawFrame,
  makeUser,
  nextEvent,
  rawAcks,
  record,
  recordFor,
  request,
  sleep,
  type TestSocket,
  type TestUser,
} from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * PROTOCOL §6: "A failed event never stores or broadcasts anything, and never takes the
 * process down"; `__proto__` keys never reach an object; oversized frames close that socket only.
 * The pods run in this process, so a crash or a prototype pollution shows up right here.
 */

const EVENTS = ['join-room', 'leave-room', 'send-message', 'typing'] as const;
const ROOM_EVENTS_SEEN: (keyof ServerToClientEvents)[] = [
  'new-message',
  'user-joined',
  'user-left',
  'typing-indicator',
  'message-deleted',
  'room-joined',
  'room-left',
  'error',
];

const it = clusterTest({ pods: 2, env: { MESSAGE_RATE_LIMIT_PER_MINUTE: '100000' } });
let sql: Sql;
let podA: string;
let podB: string;
let attacker: TestUser;
let roomId: string;
let prototypeKeysBefore: string[];
let observers: { socket: TestSocket; seen: { event: string; payload: unknown }[] }[];

it.beforeAll(async ({ cluster, sql: db }) => {
  prototypeKeysBefore = Object.getOwnPropertyNames(Object.prototype).sort();
  podA = cluster.pods[0]!.url;
  podB = cluster.pods[1]!.url;
  sql = db;
  attacker = await makeUser('공격자');
  roomId = (await createRoom(podA, attacker)).roomId;
  // The attacker is a member, so hostile payloads get as far as the content rules.
  const setupSocket = await connect(podA, attacker.token);
  expect((await emitAck(setupSocket, 'join-room', { roomId })).ok).toBe(true);
  setupSocket.close();
  observers = [];
  for (const pod of [podA, podB]) {
    const socket = await connect(pod, (await makeUser('관찰자')).token);
    expect((await emitAck(socket, 'join-room', { roomId })).ok).toBe(true);
    const seen: { event: string; payload: unknown }[] = [];
    for (const event of ROOM_EVENTS_SEEN) socket.on(event, ((payload: unknown) => seen.push({ event, payload })) as never);
    observers.push({ socket, seen });
  }
  // Forget the setup's own user-joined (the second observer joining).
  await sleep(150);
  for (const { seen } of observers) seen.length = 0;
});

/** Payloads no event accepts. Every one fails the roomId rule or is not an object at all. */
function hostilePayloads(): [string, unknown][] {
  const deep: Record<string, unknown> = {};
  let cursor = deep;
  for (let depth = 0; depth < 200; depth++) {
    const next: Record<string, unknown> = {};
    cursor.a = next;
    cursor = next;
  }
  return [
    ['null', null],
    ['undefined', undefined],
    ['0', 0],
    ['a negative number', -1],
    ['a float', 3.14],
    ['NaN (null on the wire)', Number.NaN],
    ['true', true],
    ['an empty string', ''],
    ['the roomId as a bare string', roomId],
    ['an empty array', []],
    ['an array holding the payload', [{ roomId, type: 'text', content: 'x' }]],
    ['a long array', Array.from({ length: 2000 }, () => 0)],
    ['an empty object', {}],
    ['a deeply nested object', deep],
    ['roomId: null', { roomId: null, type: 'text', content: 'x', isTyping: true }],
    ['roomId: number', { roomId: 12345, type: 'text', content: 'x', isTyping: true }],
    ['roomId: array', { roomId: [roomId], type: 'text', content: 'x', isTyping: true }],
    ['roomId: object', { roomId: { toString: roomId, valueOf: roomId }, type: 'text', content: 'x', isTyping: true }],
    ['roomId: nested payload', { roomId: { roomId }, type: 'text', content: 'x', isTyping: true }],
    ['roomId: "__proto__"', { roomId: '__proto__', type: 'text', content: 'x', isTyping: true }],
    ['roomId: "constructor"', { roomId: 'constructor', type: 'text', content: 'x', isTyping: true }],
    ['roomId with NUL', { roomId: `${roomId}\u0000`, type: 'text', content: 'x', isTyping: true }],
    ['roomId: SQL', { roomId: `${roomId}' or '1'='1`, type: 'text', content: 'x', isTyping: true }],
    ['an unknown room', { roomId: randomUUID(), type: 'text', content: 'x', isTyping: true }],
    ['constructor.prototype', { constructor: { prototype: { polluted: 'yes' } }, type: 'text', content: 'x' }],
  ];
}

/** Send-message payloads with a good roomId that still break a content rule. */
function hostileBodies(): [string, unknown, string][] {
  return [
    ['no type', { roomId, content: 'x' }, 'INVALID_MESSAGE_TYPE'],
    ['type object', { roomId, type: { toString: 'text' }, content: 'x' }, 'INVALID_MESSAGE_TYPE'],
    ['type "__proto__"', { roomId, type: '__proto__', content: 'x' }, 'INVALID_MESSAGE_TYPE'],
    ['content object', { roomId, type: 'text', content: { length: 1 } }, 'CONTENT_REQUIRED'],
    ['content array', { roomId, type: 'text', content: ['x'] }, 'CONTENT_REQUIRED'],
    ['content number', { roomId, type: 'text', content: 1 }, 'CONTENT_REQUIRED'],
    ['content NUL', { roomId, type: 'text', content: '\u0000' }, 'INVALID_CONTENT'],
    ['content with NUL inside', { roomId, type: 'text', content: 'hello\u0000world' }, 'INVALID_CONTENT'],
    ['content lone surrogate', { roomId, type: 'text', content: 'x\ud800y' }, 'INVALID_CONTENT'],
    ['content ANSI escape', { roomId, type: 'text', content: '\u001b[2J' }, 'INVALID_CONTENT'],
    ['content of 1001', { roomId, type: 'text', content: 'a'.repeat(1001) }, 'MESSAGE_TOO_LONG'],
    ['emoji NUL', { roomId, type: 'emoji', content: '😀\u0000' }, 'INVALID_EMOJI'],
    ['image javascript:', { roomId, type: 'image', imageUrl: 'javascript:alert(1)' }, 'INVALID_IMAGE_URL'],
    ['image data:', { roomId, type: 'image', imageUrl: 'data:text/html,<script>alert(1)</script>' }, 'INVALID_IMAGE_URL'],
    ['image NUL', { roomId, type: 'image', imageUrl: 'https://cdn.example/\u0000.png' }, 'INVALID_IMAGE_URL'],
    ['image object', { roomId, type: 'image', imageUrl: { href: 'https://cdn.example/a.png' } }, 'INVALID_IMAGE_URL'],
    ['clientMessageId object', { roomId, type: 'text', content: 'x', clientMessageId: { a: 1 } }, 'INVALID_CLIENT_MESSAGE_ID'],
    ['clientMessageId NUL', { roomId, type: 'text', content: 'x', clientMessageId: '\u0000' }, 'INVALID_CLIENT_MESSAGE_ID'],
  ];
}

function expectRoomIdFailure(event: string, label: string, ack: AckResponse<unknown>) {
  if (event === 'typing') {
    // Typing is best-effort: a malformed one is dropped silently, the ack says nothing more.
    expect(ack, `${event} ${label}`).toEqual({ ok: true, data: {} });
    return;
  }
  expect(ack.ok, `${event} ${label}`).toBe(false);
  if (ack.ok) return;
  expect(['ROOM_ID_REQUIRED', 'ROOM_NOT_FOUND'], `${event} ${label}: ${ack.error.code}`).toContain(ack.error.code);
  expect(ack.error.message).toBe(ack.error.code === 'ROOM_ID_REQUIRED' ? 'roomId가 필요합니다' : '방을 찾을 수 없습니다');
}

describe('hostile payloads', () => {
  it('every event answers every malformed payload with a clean error (ack and error event), nothing else', async () => {
    const socket = await connect(podA, attacker.token);
    const errors = record(socket, 'error');
    let expectedErrors = 0;
    for (const event of EVENTS) {
      for (const [label, payload] of hostilePayloads()) {
        expectRoomIdFailure(event, label, await emitAck(socket, event, payload));
        if (event !== 'typing') expectedErrors++;
      }
    }
    for (const [label, payload, code] of hostileBodies()) {
      const ack = await emitAck(socket, 'send-message', payload);
      expect(ack, label).toMatchObject({ ok: false, error: { code } });
      expectedErrors++;
    }
    await sleep(100);
    expect(errors).toHaveLength(expectedErrors);
    for (const error of errors) {
      expect(Object.keys(error).sort()).toEqual(['code', 'event', 'message']);
      expect(EVENTS).toContain(error.event);
    }
    expect(socket.connected).toBe(true);
  });

  it('without an ack, a failure still arrives as an error event; the socket stays usable', async () => {
    const socket = await connect(podA, attacker.token);
    for (const event of EVENTS.filter((e) => e !== 'typing')) {
      const error = nextEvent(socket, 'error');
      (socket as unknown as { emit(event: string, ...args: unknown[]): void }).emit(event, null);
      expect(await error).toEqual({ message: 'roomId가 필요합니다', code: 'ROOM_ID_REQUIRED', event });
    }
    const bodyError = nextEvent(socket, 'error');
    socket.emit('send-message', { roomId, type: 'text', content: 'NUL \u0000 here' });
    expect(await bodyError).toEqual({ message: '유효하지 않은 메시지 내용입니다', code: 'INVALID_CONTENT', event: 'send-message' });
    // No payload and no ack at all.
    const bare = nextEvent(socket, 'error');
    (socket as unknown as { emit(event: string): void }).emit('send-message');
    expect(await bare).toMatchObject({ code: 'ROOM_ID_REQUIRED', event: 'send-message' });
    expect(socket.connected).toBe(true);
  });

  it('a non-function last argument is not an ack; extra arguments are ignored', async () => {
    const socket = await connect(podA, attacker.token);
    const raw = socket as unknown as { emit(event: string, ...args: unknown[]): void };
    const error = nextEvent(socket, 'error');
    raw.emit('send-message', { roomId, type: 'text', content: '' }, 'not-a-function');
    expect(await error).toEqual({ message: '메시지 내용을 입력해주세요', code: 'CONTENT_REQUIRED', event: 'send-message' });
    for (const last of [42, null, { ack: true }, ['x']]) {
      const failed = nextEvent(socket, 'error');
      raw.emit('join-room', { roomId: 'nope' }, last);
      expect(await failed).toMatchObject({ code: 'ROOM_NOT_FOUND', event: 'join-room' });
    }
    // A function ack with junk before it: the first argument is the payload.
    const ack = await new Promise((resolve) => raw.emit('leave-room', 'junk', { roomId }, resolve));
    expect(ack).toEqual({ ok: false, error: { message: 'roomId가 필요합니다', code: 'ROOM_ID_REQUIRED' } });
    // The ack alone, no payload.
    const onlyAck = await new Promise((resolve) => raw.emit('join-room', resolve));
    expect(onlyAck).toEqual({ ok: false, error: { message: 'roomId가 필요합니다', code: 'ROOM_ID_REQUIRED' } });
    // A valid payload followed by a non-function still works (and is idempotent for a member).
    const joined = nextEvent(socket, 'room-joined');
    raw.emit('join-room', { roomId }, 'x', 1);
    expect(await joined).toEqual({ roomId, memberCount: 3, lastChangeSeq: expect.any(Number) });
  });

  it('an event the protocol does not name is answered INVALID_REQUEST (ack and error event), not left hanging', async () => {
    const socket = await connect(podA, attacker.token);
    const raw = socket as unknown as { emit(event: string, ...args: unknown[]): void };
    const refused = { message: ERRORS.INVALID_REQUEST.message, code: 'INVALID_REQUEST' };
    // Deleting is REST (§8); a socket `delete-message` is not an event of the protocol.
    for (const event of ['delete-message', 'JOIN-ROOM', 'sendMessage', '__proto__', 'hasOwnProperty']) {
      const error = nextEvent(socket, 'error');
      expect(await emitAck(socket, event, { roomId, messageId: randomUUID() }, 2000), event).toEqual({ ok: false, error: refused });
      expect(await error).toEqual({ ...refused, event });
    }
    // Without an ack, the error event alone.
    const bare = nextEvent(socket, 'error');
    raw.emit('delete-message', { roomId });
    expect(await bare).toEqual({ ...refused, event: 'delete-message' });
    expect(socket.connected).toBe(true);
    expect(await emitAck(socket, 'join-room', { roomId })).toMatchObject({ ok: true });
  });

  it('raw frames with own __proto__ / constructor keys pollute nothing and are refused', async () => {
    const socket = await connect(podA, attacker.token);
    const acks = rawAcks(socket);
    const frames: [string, string][] = [
      ['send-message', `{"__proto__":{"roomId":"${roomId}","type":"text","content":"pwn","polluted":"yes"}}`],
      ['join-room', `{"__proto__":{"roomId":"${roomId}","polluted":"yes"}}`],
      ['leave-room', `{"__proto__":{"roomId":"${roomId}","polluted":"yes"}}`],
      ['typing', `{"__proto__":{"roomId":"${roomId}","isTyping":true,"polluted":"yes"}}`],
      ['send-message', `{"roomId":"${roomId}","__proto__":{"type":"text","content":"pwn","polluted":"yes"}}`],
      ['send-message', `{"roomId":"${roomId}","type":"text","__proto__":{"content":"pwn"},"content":{"__proto__":{"length":5}}}`],
      ['send-message', `{"roomId":"${roomId}","type":"text","content":"","constructor":{"prototype":{"polluted":"yes"}}}`],
      ['send-message', `{"roomId":{"__proto__":{"length":36}},"type":"text","content":"x"}`],
      ['send-message', `{"roomId":"${roomId}","type":"image","imageUrl":{"__proto__":{"polluted":"yes"}}}`],
    ];
    const expected: Record<string, string> = {
      0: 'ROOM_ID_REQUIRED',
      1: 'ROOM_ID_REQUIRED',
      2: 'ROOM_ID_REQUIRED',
      4: 'INVALID_MESSAGE_TYPE',
      5: 'CONTENT_REQUIRED',
      6: 'CONTENT_REQUIRED',
      7: 'ROOM_ID_REQUIRED',
      8: 'INVALID_IMAGE_URL',
    };
    frames.forEach(([event, json], index) => emitRawFrame(socket, `[${JSON.stringify(event)},${json}]`, 9000 + index));
    for (let waited = 0; waited < 3000 && acks.size < frames.length; waited += 25) await sleep(25);
    expect(acks.size).toBe(frames.length);
    frames.forEach((_, index) => {
      const [ack] = acks.get(9000 + index)!;
      if (index === 3) expect(ack).toEqual({ ok: true, data: {} });
      else expect(ack, `frame ${index}`).toMatchObject({ ok: false, error: { code: expected[index] } });
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).roomId).toBeUndefined();
    expect(socket.connected).toBe(true);
  });

  it('a valid message with a smuggled __proto__ key is stored and broadcast with the named fields only', async () => {
    const author = await makeUser('작성자');
    const room = await createRoom(podA, author);
    const socket = await connect(podA, author.token);
    await emitAck(socket, 'join-room', { roomId: room.roomId });
    const acks = rawAcks(socket);
    const broadcast = nextEvent(socket, 'new-message');
    const forgedId = randomUUID();
    const sentAt = Date.now();
    emitRawFrame(
      socket,
      `["send-message",{"roomId":"${room.roomId}","type":"text","content":"정상","__proto__":{"isAdmin":true,"polluted":"yes"},"userId":"${randomUUID()}","seq":999,"nicknameMask":"관리자",` +
        `"sender":{"kind":"system","id":"admin","name":"운영자"},"createdAt":"2000-01-01T00:00:00.000Z","changeSeq":999,"messageId":"${forgedId}","imageUrl":"https://example.com/a.png"}]`,
      7,
    );
    const message = await broadcast;
    expect(Object.keys(message).sort()).toEqual(
      ['changeSeq', 'clientMessageId', 'content', 'createdAt', 'imageUrl', 'messageId', 'nicknameMask', 'roomId', 'seq', 'type', 'userId'].sort(),
    );
    expect(message).toMatchObject({ userId: author.userId, seq: 1, nicknameMask: '작**', content: '정상', imageUrl: null });
    // A client-supplied sender, createdAt, changeSeq or messageId is never taken.
    expect(message.messageId).not.toBe(forgedId);
    expect(message.changeSeq).toBeLessThan(999);
    expect(Date.parse(message.createdAt)).toBeGreaterThanOrEqual(sentAt - 1000);
    expect((message as unknown as Record<string, unknown>).isAdmin).toBeUndefined();
    for (let waited = 0; waited < 2000 && !acks.has(7); waited += 25) await sleep(25);
    expect(acks.get(7)).toEqual([{ ok: true, data: message }]);
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    expect(await countMessageRows(sql, room.roomId)).toBe(1);
  });

  it('raw frames the parser refuses (reserved or non-string event names, broken JSON) close that socket only', async () => {
    const bystander = await connect(podA, attacker.token);
    const junk = [
      '["disconnect"]',
      '["connect",{}]',
      '[42,{}]',
      '[]',
      '{"event":"send-message"}',
      '["send-message",{"roomId":',
      '["__proto__",{}]',
      '["constructor",{}]',
      '["hasOwnProperty",{}]',
      '["unknown-event",{"roomId":"x"}]',
    ];
    for (const frame of junk) {
      const socket = await connect(podA, attacker.token);
      const closed = new Promise<string>((resolve) => socket.once('disconnect', (reason) => resolve(reason)));
      emitRawFrame(socket, frame);
      // Either the server drops this socket, or ignores the frame and keeps serving it.
      const outcome = await Promise.race([closed, sleep(300).then(() => 'open')]);
      if (outcome === 'open') {
        const ack = await emitAck(socket, 'join-room', { roomId: 'nope' });
        expect(ack, frame).toMatchObject({ ok: false, error: { code: 'ROOM_NOT_FOUND' } });
      }
      socket.close();
    }
    expect(bystander.connected).toBe(true);
    expect(await emitAck(bystander, 'join-room', { roomId })).toEqual({ ok: true, data: { roomId, memberCount: 3, lastChangeSeq: expect.any(Number) } });
  });

  it('a frame over ~16 KB closes that socket only; the pod keeps serving the others', async () => {
    const bystanders = [await connect(podA, attacker.token), await connect(podA, (await makeUser('이웃')).token)];
    const bystanderDisconnects = bystanders.map((socket) => record(socket as TestSocket, 'error'));
    let bystanderDropped = false;
    for (const socket of bystanders) socket.on('disconnect', () => (bystanderDropped = true));
    const huge = 'a'.repeat(100_000);
    const oversized: [string, unknown][] = [
      ['send-message', { roomId, type: 'text', content: huge }],
      ['join-room', { roomId: huge }],
      ['leave-room', { roomId, padding: huge }],
      ['typing', { roomId, isTyping: true, padding: huge }],
      ['send-message', { roomId, type: 'image', imageUrl: `https://cdn.example/${huge}` }],
      ['send-message', { roomId, type: 'text', content: '가'.repeat(6000) }], // 18 KB in UTF-8
    ];
    for (const [event, payload] of oversized) {
      const socket = await connect(podA, attacker.token);
      const closed = new Promise<string>((resolve) => socket.once('disconnect', (reason) => resolve(reason)));
      const ack = emitAck(socket, event, payload, 1500).catch(() => 'no ack');
      expect(await Promise.race([closed, sleep(3000).then(() => 'still open')]), event).not.toBe('still open');
      expect(await ack).toBe('no ack');
    }
    // Just under the limit is served normally.
    const fits = await connect(podA, attacker.token);
    expect(await emitAck(fits, 'send-message', { roomId, type: 'text', content: 'a'.repeat(1001), padding: 'p'.repeat(12_000) })).toMatchObject({
      ok: false,
      error: { code: 'MESSAGE_TOO_LONG' },
    });
    expect(bystanderDropped).toBe(false);
    expect(bystanders.every((socket) => socket.connected)).toBe(true);
    expect(bystanderDisconnects.flat()).toEqual([]);
    const ack = await emitAck(bystanders[1]!, 'join-room', { roomId });
    expect(ack).toMatchObject({ ok: true });
  });

  it('after all of it: nothing stored, nothing broadcast, no pollution, and both pods still serve', async () => {
    // Observers heard nothing but the joins of the bystander above (a new member).
    await sleep(200);
    for (const { seen } of observers) {
      expect(seen.filter((entry) => entry.event !== 'user-joined')).toEqual([]);
      expect(seen.filter((entry) => entry.event === 'user-joined')).toHaveLength(1);
      expect(seen[0]?.payload).toMatchObject({ roomId, nicknameMask: '이*', memberCount: 4 });
    }
    expect(await countMessageRows(sql, roomId)).toBe(0);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeysBefore);
    for (const key of ['polluted', 'isAdmin', 'roomId', 'type', 'content', 'length']) {
      expect(Object.hasOwn(Object.prototype, key), key).toBe(false);
    }
    // A fresh client on each pod joins and sends; both observers get exactly that.
    for (const pod of [podA, podB]) {
      const fresh = await connect(pod, attacker.token);
      const before = observers.map(({ seen }) => seen.length);
      const sent = await emitAck<NewMessagePayload>(fresh, 'send-message', { roomId, type: 'text', content: `살아있음 ${pod}` });
      expect(sent).toMatchObject({ ok: true, data: { content: `살아있음 ${pod}` } });
      await sleep(150);
      observers.forEach(({ seen }, index) => {
        expect(seen.slice(before[index])).toEqual([{ event: 'new-message', payload: sent.ok ? sent.data : null }]);
      });
    }
    expect(await countMessageRows(sql, roomId)).toBe(2);
    for (const pod of [podA, podB]) expect((await request(pod, 'GET', '/livez')).status).toBe(200);
    const unseen = await recordFor(observers[0]!.socket, ROOM_EVENTS_SEEN, 50);
    expect(unseen).toEqual([]);
  });
});
