import { describe, expect, it } from 'vitest';
import {
  AppError,
  ERRORS,
  isEmoji,
  isImageUrl,
  parseMessageBody,
  parseTyping,
  readRoomId,
  type ErrorCode,
} from '@chat/protocol';

const ROOM = '0190a6c4-8a4e-7c3b-9f00-0123456789ab';

/** The code of the AppError `run` throws (fails the test when it does not throw one). */
function codeOf(run: () => unknown): ErrorCode {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return (error as AppError).code;
  }
  throw new Error('expected an AppError, nothing was thrown');
}

describe('error catalog', () => {
  it('holds the byte-exact Korean messages of PROTOCOL §6–8', () => {
    expect(ERRORS.ROOM_ID_REQUIRED.message).toBe('roomId가 필요합니다');
    expect(ERRORS.ROOM_NOT_FOUND.message).toBe('방을 찾을 수 없습니다');
    expect(ERRORS.ROOM_EXPIRED.message).toBe('만료된 방입니다');
    expect(ERRORS.NOT_A_MEMBER_LEAVE.message).toBe('참여 중인 방이 아닙니다');
    expect(ERRORS.NOT_A_MEMBER.message).toBe('방에 참여 중이 아닙니다');
    expect(ERRORS.INVALID_MESSAGE_TYPE.message).toBe('유효하지 않은 메시지 타입입니다');
    expect(ERRORS.CONTENT_REQUIRED.message).toBe('메시지 내용을 입력해주세요');
    expect(ERRORS.MESSAGE_TOO_LONG.message).toBe('메시지는 1000자 이하여야 합니다');
    expect(ERRORS.INVALID_IMAGE_URL.message).toBe('유효한 이미지 URL이 필요합니다');
    expect(ERRORS.INVALID_EMOJI.message).toBe('유효하지 않은 이모지입니다');
    expect(ERRORS.RATE_LIMITED.message).toBe('메시지 전송 한도를 초과했습니다. 잠시 후 다시 시도해주세요');
    expect(ERRORS.INVALID_CONTENT.message).toBe('유효하지 않은 메시지 내용입니다');
    expect(ERRORS.UNAVAILABLE.message).toBe('일시적인 오류입니다. 잠시 후 다시 시도해주세요');
    expect(ERRORS.LIMIT_TOO_LARGE.message).toBe('limit은 100을 초과할 수 없습니다');
    expect(ERRORS.INVALID_LIMIT.message).toBe('limit은 1 이상의 정수여야 합니다');
    expect(ERRORS.BEFORE_NOT_FOUND.message).toBe('before 메시지를 찾을 수 없습니다');
    expect(ERRORS.MESSAGE_NOT_FOUND.message).toBe('메시지를 찾을 수 없습니다');
    expect(ERRORS.NOT_MESSAGE_OWNER.message).toBe('본인의 메시지만 삭제할 수 있습니다');
    expect(ERRORS.UNAUTHORIZED.message).toBe('인증이 필요합니다');
    expect(ERRORS.AUTH_REQUIRED.message).toBe('인증 토큰이 필요합니다');
    expect(ERRORS.INVALID_TOKEN.message).toBe('유효하지 않은 토큰입니다');
  });
});

describe('readRoomId (first rule of every room event)', () => {
  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['a string', ROOM],
    ['an array', [ROOM]],
    ['an empty object', {}],
    ['roomId null', { roomId: null }],
    ['roomId a number', { roomId: 1 }],
    ['roomId an object', { roomId: { toString: () => ROOM } }],
    ['roomId an array', { roomId: [ROOM] }],
    ['roomId empty', { roomId: '' }],
    ['roomId only on the prototype', JSON.parse(`{"__proto__": {"roomId": "${ROOM}"}}`)],
    ['roomId inherited via Object.create', Object.create({ roomId: ROOM })],
  ])('%s → ROOM_ID_REQUIRED', (_label, payload) => {
    expect(codeOf(() => readRoomId(payload))).toBe('ROOM_ID_REQUIRED');
  });

  it.each(['not-a-uuid', ' ' + ROOM, ROOM + ' ', ROOM.replace(/-/g, ''), `${ROOM}x`, '00000000-0000-0000-0000-00000000000g', "' or 1=1 --"])(
    'a non-UUID roomId %j → ROOM_NOT_FOUND',
    (roomId) => {
      expect(codeOf(() => readRoomId({ roomId }))).toBe('ROOM_NOT_FOUND');
    },
  );

  it('returns a valid UUID lower-cased', () => {
    expect(readRoomId({ roomId: ROOM })).toBe(ROOM);
    expect(readRoomId({ roomId: ROOM.toUpperCase() })).toBe(ROOM);
  });

  it('the thrown AppError carries the protocol message and status', () => {
    try {
      readRoomId({});
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: 'ROOM_ID_REQUIRED', message: 'roomId가 필요합니다', status: 400 });
    }
  });
});

describe('parseMessageBody: type → content → length, then the [ext] rules', () => {
  it('accepts the three spec shapes and returns only the named fields', () => {
    expect(parseMessageBody({ roomId: ROOM, type: 'text', content: '안녕하세요!', extra: 'x' })).toEqual({
      type: 'text',
      content: '안녕하세요!',
      imageUrl: null,
      clientMessageId: null,
    });
    expect(parseMessageBody({ roomId: ROOM, type: 'image', imageUrl: 'https://cdn.example/a.png', content: 'ignored' })).toEqual({
      type: 'image',
      content: null,
      imageUrl: 'https://cdn.example/a.png',
      clientMessageId: null,
    });
    expect(parseMessageBody({ type: 'emoji', content: '👍🏽', clientMessageId: 'c-1' })).toEqual({
      type: 'emoji',
      content: '👍🏽',
      imageUrl: null,
      clientMessageId: 'c-1',
    });
  });

  it('keeps content verbatim (no trimming, no HTML escaping)', () => {
    const content = '  <script>alert("x")</script> &amp; \n 줄바꿈\t';
    expect(parseMessageBody({ type: 'text', content }).content).toBe(content);
  });

  it.each<[string, unknown]>([
    ['no payload', undefined],
    ['null', null],
    ['an array', ['text']],
    ['no type', { content: 'hi' }],
    ['unknown type', { type: 'video', content: 'hi' }],
    ['upper-case type', { type: 'TEXT', content: 'hi' }],
    ['type as a number', { type: 1, content: 'hi' }],
    ['type as an array', { type: ['text'], content: 'hi' }],
    ['type on the prototype only', JSON.parse('{"__proto__": {"type": "text"}, "content": "hi"}')],
  ])('%s → INVALID_MESSAGE_TYPE', (_label, payload) => {
    expect(codeOf(() => parseMessageBody(payload))).toBe('INVALID_MESSAGE_TYPE');
  });

  it('an invalid type wins over missing content and an invalid clientMessageId', () => {
    expect(codeOf(() => parseMessageBody({ type: 'nope', clientMessageId: 7 }))).toBe('INVALID_MESSAGE_TYPE');
  });

  it.each<[string, unknown]>([
    ['missing', undefined],
    ['null', null],
    ['empty', ''],
    ['spaces', '   '],
    ['newlines and tabs', '\n\t\r\n'],
    ['ideographic space', '\u3000'],
    ['a number', 5],
    ['an array', ['hi']],
    ['an object', { text: 'hi' }],
  ])('text content %s → CONTENT_REQUIRED', (_label, content) => {
    expect(codeOf(() => parseMessageBody({ type: 'text', content }))).toBe('CONTENT_REQUIRED');
    expect(codeOf(() => parseMessageBody({ type: 'emoji', content }))).toBe('CONTENT_REQUIRED');
  });

  it('text length counts code points: 1000 emoji pass, 1001 characters fail', () => {
    expect(parseMessageBody({ type: 'text', content: 'a'.repeat(1000) }).content).toHaveLength(1000);
    expect(parseMessageBody({ type: 'text', content: '가'.repeat(1000) }).type).toBe('text');
    expect(parseMessageBody({ type: 'text', content: '😀'.repeat(1000) }).type).toBe('text');
    expect(codeOf(() => parseMessageBody({ type: 'text', content: 'a'.repeat(1001) }))).toBe('MESSAGE_TOO_LONG');
    expect(codeOf(() => parseMessageBody({ type: 'text', content: '😀'.repeat(1001) }))).toBe('MESSAGE_TOO_LONG');
    expect(codeOf(() => parseMessageBody({ type: 'text', content: '가'.repeat(999) + '😀😀' }))).toBe('MESSAGE_TOO_LONG');
  });

  it('control characters → INVALID_CONTENT, after the length rule', () => {
    expect(codeOf(() => parseMessageBody({ type: 'text', content: 'a\u0000b' }))).toBe('INVALID_CONTENT');
    expect(codeOf(() => parseMessageBody({ type: 'text', content: '\u0000' }))).toBe('INVALID_CONTENT');
    expect(codeOf(() => parseMessageBody({ type: 'text', content: 'x\u001b[2J' }))).toBe('INVALID_CONTENT');
    expect(codeOf(() => parseMessageBody({ type: 'text', content: 'broken \ud83d pair' }))).toBe('INVALID_CONTENT');
    expect(codeOf(() => parseMessageBody({ type: 'text', content: 'a\u0000'.repeat(600) }))).toBe('MESSAGE_TOO_LONG');
    // Blank wins over everything else about the content.
    expect(codeOf(() => parseMessageBody({ type: 'text', content: '' }))).toBe('CONTENT_REQUIRED');
  });

  it('emoji content must be emoji', () => {
    expect(codeOf(() => parseMessageBody({ type: 'emoji', content: 'hi' }))).toBe('INVALID_EMOJI');
    expect(codeOf(() => parseMessageBody({ type: 'emoji', content: '😀'.repeat(17) }))).toBe('INVALID_EMOJI');
    expect(codeOf(() => parseMessageBody({ type: 'emoji', content: '😀\u0000' }))).toBe('INVALID_EMOJI');
  });

  it.each<[string, unknown]>([
    ['missing', undefined],
    ['null', null],
    ['a number', 1],
    ['javascript:', 'javascript:alert(1)'],
    ['relative', '/a.png'],
  ])('image with imageUrl %s → INVALID_IMAGE_URL', (_label, imageUrl) => {
    expect(codeOf(() => parseMessageBody({ type: 'image', imageUrl }))).toBe('INVALID_IMAGE_URL');
  });

  it('an image ignores content and an image url in content', () => {
    expect(codeOf(() => parseMessageBody({ type: 'image', content: 'https://cdn.example/a.png' }))).toBe('INVALID_IMAGE_URL');
  });

  it('clientMessageId: a 1–64 character string, or absent / null', () => {
    expect(parseMessageBody({ type: 'text', content: 'x', clientMessageId: null }).clientMessageId).toBeNull();
    expect(parseMessageBody({ type: 'text', content: 'x', clientMessageId: 'k'.repeat(64) }).clientMessageId).toBe('k'.repeat(64));
    expect(parseMessageBody({ type: 'text', content: 'x', clientMessageId: '😀'.repeat(64) }).clientMessageId).toBe('😀'.repeat(64));
    expect(codeOf(() => parseMessageBody({ type: 'text', content: 'x', clientMessageId: '😀'.repeat(65) }))).toBe('INVALID_CLIENT_MESSAGE_ID');
    for (const clientMessageId of ['k'.repeat(65), '', 42, true, {}, ['a'], 'a\u0000b']) {
      expect(codeOf(() => parseMessageBody({ type: 'text', content: 'x', clientMessageId }))).toBe('INVALID_CLIENT_MESSAGE_ID');
    }
    // The content rules come first.
    expect(codeOf(() => parseMessageBody({ type: 'text', content: '', clientMessageId: 42 }))).toBe('CONTENT_REQUIRED');
  });

  it('does not pollute Object.prototype with a __proto__ payload', () => {
    const payload = JSON.parse('{"type":"text","content":"hi","__proto__":{"polluted":"yes","type":"image"}}');
    expect(parseMessageBody(payload)).toEqual({ type: 'text', content: 'hi', imageUrl: null, clientMessageId: null });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('isEmoji', () => {
  it.each(['😀', '👍🏽', '👨‍👩‍👧', '🇰🇷', '1️⃣', '#️⃣', '❤️', '😀😂🎉', '😀'.repeat(16), '🏳️‍🌈', '🏴󠁧󠁢󠁳󠁣󠁴󠁿', '👨‍🦰', '❤️‍🔥', '👁️‍🗨️', '🫱🏻‍🫲🏿', '*️⃣', '1\u20e3', '🇰🇷🇯🇵', '™'])('%s is emoji', (text) => {
    expect(isEmoji(text)).toBe(true);
  });

  it.each(['', 'a', '1', '#', '*', '가', '😀a', 'a😀', '😀 😀', ' 😀', '😀\n', '\u200d', '\ufe0f', '😀'.repeat(17), ':)', '<3',
    // Digits, # and * are text unless a keycap mark follows; the marks, joiners, skin tones and
    // regional indicators are parts of an emoji, not emoji on their own.
    '😀1', '😀123', '9😀9', '😀#*', '\u20e3', '0\u20e3\u20e3', '\u200d😀', '😀\u200d', '😀\u200d\u200d😀', '🏽', '😀🏽🏽', '🇰', '🇰🇷🇰', '😀\u{e0041}'])(
    '%j is not emoji',
    (text) => {
      expect(isEmoji(text)).toBe(false);
    },
  );
});

describe('isImageUrl', () => {
  it.each(['https://cdn.example/a.png', 'http://cdn.example/a.png?x=1#y', 'https://cdn.example/@user/a.png?by=a@b', 'https://cdn.example', 'https://cdn.example?x=1', 'http://[::1]:8080/a.png', 'HTTPS://CDN.EXAMPLE/A.PNG', 'https://127.0.0.1:8080/a.png', 'https://이미지.한국/사진.png'])(
    'accepts %s',
    (url) => {
      expect(isImageUrl(url)).toBe(true);
    },
  );

  it.each<[string, unknown]>([
    ['javascript:', 'javascript:alert(1)'],
    ['JavaScript: mixed case', 'JavaScript:alert(1)'],
    ['data:', 'data:image/png;base64,iVBORw0KGgo='],
    ['file:', 'file:///etc/passwd'],
    ['ftp:', 'ftp://cdn.example/a.png'],
    ['credentials', 'https://user:pass@cdn.example/a.png'],
    ['a user name', 'https://user@cdn.example/a.png'],
    ['empty credentials', 'https://@cdn.example/a.png'],
    ['empty user and password', 'https://:@cdn.example/a.png'],
    ['a backslash before an @ (WHATWG: host cdn.example; elsewhere: user cdn.example\\)', 'https://cdn.example\\@evil.example/a.png'],
    ['a backslash in the host part', 'https://cdn.example\\a.png'],
    ['no slashes after the scheme', 'https:cdn.example/a.png'],
    ['one slash after the scheme', 'https:/cdn.example/a.png'],
    ['three slashes after the scheme', 'https:///cdn.example/a.png'],
    ['a leading space', ' https://cdn.example/a.png'],
    ['a trailing space', 'https://cdn.example/a.png '],
    ['an inner space', 'https://cdn.example/a b.png'],
    ['a tab', 'https://cdn.example/a\t.png'],
    ['a newline', 'https://cdn.example/a.png\n'],
    ['a NUL', 'https://cdn.example/a\u0000.png'],
    ['relative', '/a.png'],
    ['protocol-relative', '//cdn.example/a.png'],
    ['no host', 'https://'],
    ['empty', ''],
    ['not a string', 42],
    ['null', null],
    ['an object', { href: 'https://cdn.example/a.png' }],
  ])('rejects %s', (_label, url) => {
    expect(isImageUrl(url)).toBe(false);
  });

  it('accepts 2048 characters, rejects 2049', () => {
    const base = 'https://cdn.example/';
    const exact = base + 'a'.repeat(2048 - base.length);
    expect(exact).toHaveLength(2048);
    expect(isImageUrl(exact)).toBe(true);
    expect(isImageUrl(exact + 'a')).toBe(false);
    expect(isImageUrl(base + 'a'.repeat(100_000))).toBe(false);
    // Characters are code points: an emoji is one, not two UTF-16 units.
    const emoji = base + '😀'.repeat(2048 - base.length);
    expect(isImageUrl(emoji)).toBe(true);
    expect(isImageUrl(emoji + '😀')).toBe(false);
  });
});

describe('parseTyping', () => {
  it('accepts { roomId, isTyping: boolean } only', () => {
    expect(parseTyping({ roomId: ROOM.toUpperCase(), isTyping: true })).toEqual({ roomId: ROOM, isTyping: true });
    expect(parseTyping({ roomId: ROOM, isTyping: false, extra: 1 })).toEqual({ roomId: ROOM, isTyping: false });
    for (const bad of [null, undefined, 1, 'x', [ROOM, true], { roomId: ROOM }, { roomId: ROOM, isTyping: 'true' }, { roomId: 'x', isTyping: true }, { isTyping: true }]) {
      expect(parseTyping(bad)).toBeNull();
    }
  });
});
