import { describe, expect, it } from 'vitest';
import { hasForbiddenCharacters, isInvisibleOnly, readName, textProblem } from '../src/index.ts';

/** The character rules names, nicknames and message text share (docs/PROTOCOL.md §11). */
describe('text rules', () => {
  it('refuses controls, lone surrogates and every bidi embedding, override and isolate', () => {
    const refused = ['\u0000', '\u0007', '\u001b', '\u007f', '\u0085', '\ud800', '\udc00'];
    for (let code = 0x202a; code <= 0x202e; code++) refused.push(String.fromCharCode(code));
    for (let code = 0x2066; code <= 0x2069; code++) refused.push(String.fromCharCode(code));
    for (const character of refused) {
      expect(hasForbiddenCharacters(`a${character}b`), character.codePointAt(0)!.toString(16)).toBe(true);
      expect(textProblem(`a${character}b`)).toBe('forbidden-character');
    }
    for (const allowed of ['a\tb', 'a\nb', 'a\r\nb', 'abc\u200edef', 'abc\u200fdef', '👨‍👩‍👧', '😀', 'שלום']) {
      expect(textProblem(allowed), JSON.stringify(allowed)).toBeNull();
    }
  });

  it('sees text made only of spaces and invisible characters as nothing', () => {
    for (const invisible of ['', ' ', '\u200b', '\ufeff\u2060', '\u00a0\u200d', '\u3164', '\u115f\u1160', '\uffa0', '\ufe0f', '\u180e']) {
      expect(isInvisibleOnly(invisible), JSON.stringify(invisible)).toBe(true);
    }
    for (const visible of ['a', ' a ', '\u200ba', '가', '\u2800']) expect(isInvisibleOnly(visible), JSON.stringify(visible)).toBe(false);
  });

  it('reads a name: trimmed, 1 to max code points, by the rules above', () => {
    expect(readName('  김철수  ', 30)).toBe('김철수');
    expect(readName('😀'.repeat(30), 30)).toBe('😀'.repeat(30));
    expect(readName('😀'.repeat(31), 30)).toBeNull();
    for (const bad of ['', '   ', '\u200b', 'a\u202eb', 'a\u0000', 42, null, undefined]) {
      expect(readName(bad, 30), JSON.stringify(bad)).toBeNull();
    }
  });
});
