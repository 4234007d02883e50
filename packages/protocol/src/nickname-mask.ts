const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Splits into user-perceived characters, so `👨‍👩‍👧` masks as one character. */
export function characters(text: string): string[] {
  return Array.from(graphemes.segment(text), (part) => part.segment);
}

/**
 * Grapheme segmentation allocates an object per character: a history page masks 50 nicknames,
 * mostly the same few, so masks are remembered (bounded, oldest forgotten first).
 */
const rememberedMasks = new Map<string, string>();
const REMEMBERED_MASKS = 10_000;

/** `김철수` → `김**`; a one-character nickname masks to `*` (docs/PROTOCOL.md §0). */
export function nicknameMask(nickname: string): string {
  const known = rememberedMasks.get(nickname);
  if (known !== undefined) return known;
  const chars = characters(nickname);
  const mask = chars.length <= 1 ? '*' : chars[0] + '*'.repeat(chars.length - 1);
  if (rememberedMasks.size >= REMEMBERED_MASKS) {
    const oldest = rememberedMasks.keys().next();
    if (!oldest.done) rememberedMasks.delete(oldest.value);
  }
  rememberedMasks.set(nickname, mask);
  return mask;
}
