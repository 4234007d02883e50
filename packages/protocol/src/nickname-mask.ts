const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Splits into user-perceived characters, so `👨‍👩‍👧` masks as one character. */
export function characters(text: string): string[] {
  return Array.from(graphemes.segment(text), (part) => part.segment);
}

/** `김철수` → `김**`; a one-character nickname masks to `*` (PROTOCOL §0). */
export function nicknameMask(nickname: string): string {
  const chars = characters(nickname);
  if (chars.length <= 1) return '*';
  return chars[0] + '*'.repeat(chars.length - 1);
}
