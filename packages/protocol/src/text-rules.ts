import { codePointLength, hasForbiddenCharacters } from './fields.ts';

export const ROOM_NAME_MAX_CHARACTERS = 50;
export const NICKNAME_MAX_CHARACTERS = 30;

/**
 * The character rules that room names, nicknames and text messages share (docs/PROTOCOL.md
 * §11): no forbidden character (fields.ts: controls, unpaired surrogates, bidirectional
 * overrides and isolates), and something visible. Text made only of spaces and invisible
 * characters — format characters (U+200B ZERO WIDTH SPACE, U+FEFF, U+2060 WORD JOINER, …) and
 * the other default-ignorable code points (the Hangul fillers U+115F, U+1160, U+3164, U+FFA0,
 * variation selectors) — would show as a blank name or an empty bubble.
 */
const NOTHING_VISIBLE = /^[\p{White_Space}\p{Cf}\p{Default_Ignorable_Code_Point}]*$/u;

/** True when the text shows nothing: empty, or only spaces and invisible characters. */
export function isInvisibleOnly(text: string): boolean {
  return NOTHING_VISIBLE.test(text);
}

/** What is wrong with a text others will see, if anything, by the rules above. */
export function textProblem(text: string): 'forbidden-character' | 'nothing-visible' | null {
  if (hasForbiddenCharacters(text)) return 'forbidden-character';
  if (isInvisibleOnly(text)) return 'nothing-visible';
  return null;
}

/**
 * A room name or a nickname as stored: trimmed, 1 to `maxCharacters` code points, and passing
 * `textProblem`; null when it does not qualify (the caller answers its own error code).
 */
export function readName(value: unknown, maxCharacters: number): string | null {
  if (typeof value !== 'string') return null;
  const name = value.trim();
  if (codePointLength(name) > maxCharacters || textProblem(name) !== null) return null;
  return name;
}
