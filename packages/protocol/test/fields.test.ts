import { describe, expect, it } from 'vitest';
import { codePointLength, field, hasForbiddenCharacters, isRecord, isUuid } from '@chat/protocol';

describe('codePointLength', () => {
  it.each([
    ['', 0],
    ['a', 1],
    ['안녕하세요', 5],
    ['😀', 1],
    ['😀😀😀', 3],
    ['👨‍👩‍👧', 5], // man ZWJ woman ZWJ girl: code points, not graphemes
    ['🇰🇷', 2],
    ['e\u0301', 2],
    ['a😀b', 3],
  ])('%j has %i code points', (text, expected) => {
    expect(codePointLength(text)).toBe(expected);
    expect(codePointLength(text)).toBe([...text].length);
  });

  it('counts lone surrogates as one each, in any order', () => {
    expect(codePointLength('\ud800')).toBe(1);
    expect(codePointLength('a\ud800')).toBe(2);
    expect(codePointLength('\udc00\ud800')).toBe(2);
    expect(codePointLength('\ud800\ud800\udc00')).toBe(2);
  });

  it('agrees with the spread operator on a long mixed string', () => {
    const text = '가😀a\u{1F1F0}\u{1F1F7}\ud800'.repeat(300);
    expect(codePointLength(text)).toBe([...text].length);
  });
});

describe('hasForbiddenCharacters', () => {
  it('allows tab, line feed, carriage return, Korean and emoji', () => {
    expect(hasForbiddenCharacters('안녕\t하세요\r\n😀 <b>&amp;</b>')).toBe(false);
  });

  it.each(['\u0000', 'a\u0000b', '\u0007', '\u001b[31m', '\u007f', '\u0085', '\u009f', '\ud800', 'x\udc00', '\udc00\ud800'])(
    'rejects %j',
    (text) => {
      expect(hasForbiddenCharacters(text)).toBe(true);
    },
  );
});

describe('isUuid / isRecord / field', () => {
  it('recognises UUIDs of any case and nothing else', () => {
    expect(isUuid('0190a6c4-8a4e-7c3b-9f00-0123456789ab')).toBe(true);
    expect(isUuid('0190A6C4-8A4E-7C3B-9F00-0123456789AB')).toBe(true);
    expect(isUuid('0190a6c4-8a4e-7c3b-9f00-0123456789a')).toBe(false);
    expect(isUuid(' 0190a6c4-8a4e-7c3b-9f00-0123456789ab')).toBe(false);
    expect(isUuid('0190a6c4-8a4e-7c3b-9f00-0123456789ab\n')).toBe(false);
    expect(isUuid('0190a6c48a4e7c3b9f000123456789ab')).toBe(false);
    expect(isUuid(123)).toBe(false);
    expect(isUuid(null)).toBe(false);
  });

  it('isRecord accepts plain objects only', () => {
    expect(isRecord({})).toBe(true);
    expect(isRecord(Object.create(null))).toBe(true);
    expect(isRecord([])).toBe(false);
    expect(isRecord(null)).toBe(false);
    expect(isRecord('x')).toBe(false);
    expect(isRecord(1)).toBe(false);
    expect(isRecord(undefined)).toBe(false);
  });

  it('field reads own properties only, never the prototype chain', () => {
    const parsed = JSON.parse('{"__proto__": {"roomId": "x"}, "a": 1}') as Record<string, unknown>;
    expect(field(parsed, 'a')).toBe(1);
    expect(field(parsed, 'roomId')).toBeUndefined();
    expect(field(parsed, '__proto__')).toEqual({ roomId: 'x' });
    expect(field({}, 'toString')).toBeUndefined();
    expect(field({}, 'constructor')).toBeUndefined();
    expect(({} as Record<string, unknown>).roomId).toBeUndefined();
  });
});
