import { describe, expect, it } from 'vitest';
import { characters, nicknameMask } from '@chat/protocol';

describe('nicknameMask (PROTOCOL §0)', () => {
  it.each([
    ['김철수', '김**'],
    ['김수', '김*'],
    ['김', '*'],
    ['a', '*'],
    ['Alice', 'A****'],
    ['남궁민수입니다', '남******'],
  ])('%s → %s', (nickname, mask) => {
    expect(nicknameMask(nickname)).toBe(mask);
  });

  it('counts an astral character (a surrogate pair) as one character', () => {
    expect(nicknameMask('😀')).toBe('*');
    expect(nicknameMask('😀😀')).toBe('😀*');
    expect(nicknameMask('𠀋가')).toBe('𠀋*');
    // Never splits a surrogate pair.
    expect(nicknameMask('😀가나')).toBe('😀**');
  });

  it('keeps grapheme clusters whole (ZWJ families, skin tones, flags, combining marks)', () => {
    expect(nicknameMask('👨‍👩‍👧')).toBe('*');
    expect(nicknameMask('👨‍👩‍👧가나')).toBe('👨‍👩‍👧**');
    expect(nicknameMask('👍🏽')).toBe('*');
    expect(nicknameMask('A👍🏽B')).toBe('A**');
    expect(nicknameMask('🇰🇷🇺🇸')).toBe('🇰🇷*');
    // e + COMBINING ACUTE ACCENT is one user-perceived character.
    expect(nicknameMask('e\u0301x')).toBe('e\u0301*');
    // Decomposed Hangul jamo (ᄀ + ᅡ) form one syllable.
    expect(nicknameMask('\u1100\u1161\u1100\u1161')).toBe('\u1100\u1161*');
  });

  it('masks spaces and punctuation like any other character', () => {
    expect(nicknameMask('김 철')).toBe('김**');
    expect(nicknameMask('**')).toBe('**');
  });

  it('characters() splits into grapheme clusters', () => {
    expect(characters('김👨‍👩‍👧🇰🇷')).toEqual(['김', '👨‍👩‍👧', '🇰🇷']);
    expect(characters('')).toEqual([]);
  });
});
