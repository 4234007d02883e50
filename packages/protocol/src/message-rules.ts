import { AppError } from './errors.ts';
import { codePointLength, hasForbiddenCharacters } from './fields.ts';
import { optional, required } from './payload-contract.ts';
import { isInvisibleOnly } from './text-rules.ts';

export const MESSAGE_TYPES = ['text', 'image', 'emoji'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export const TEXT_MAX_CHARACTERS = 1000;
export const EMOJI_MAX_CODE_POINTS = 16;
export const IMAGE_URL_MAX_LENGTH = 2048;
export const CLIENT_MESSAGE_ID_MAX_LENGTH = 64;

/**
 * One or more whole emoji (UTS #51, leniently): a pictograph with an optional presentation
 * selector, skin tone or tag sequence (🏴󠁧󠁢󠁳󠁣󠁴󠁿), pictographs joined by ZWJ into one (👨‍👩‍👧), a keycap
 * (a digit, `#` or `*`, then U+20E3: 1️⃣) or a flag (two regional indicators: 🇰🇷). Each part
 * must be whole: a digit, `#` or `*` is text unless a keycap follows it (`😀123` is not emoji),
 * and a lone keycap mark, joiner or skin tone shows as a broken glyph.
 */
const PICTOGRAPH = String.raw`\p{Extended_Pictographic}(?:\p{Emoji_Modifier}\ufe0f?|\ufe0f\p{Emoji_Modifier}?|[\u{e0020}-\u{e007e}]+\u{e007f})?`;
const EMOJI_SEQUENCE = new RegExp(
  String.raw`^(?:${PICTOGRAPH}(?:\u200d${PICTOGRAPH})*|[0-9#*]\ufe0f?\u20e3|\p{Regional_Indicator}{2})+$`,
  'u',
);

export function isEmoji(text: string): boolean {
  return codePointLength(text) <= EMOJI_MAX_CODE_POINTS && EMOJI_SEQUENCE.test(text);
}

/**
 * How an image URL must begin, as written: `http://` or `https://`, then a host part (up to the
 * first `/`, `?` or `#`) that is not empty and holds no `@` and no `\`. The WHATWG parser below
 * forgives `https:host`, `https:///host`, `https://@host` and `https://host\@other/`, but
 * clients store the URL as sent and other parsers (mobile platforms' URI classes) read some of
 * these with another host, or with credentials the check below never saw.
 */
const IMAGE_URL_START = /^https?:\/\/[^/?#@\\]+(?:[/?#]|$)/i;

/** http(s) only (a bare `URL` parse also accepts `javascript:` and `data:`), no credentials. */
export function isImageUrl(value: unknown): value is string {
  if (typeof value !== 'string' || value.length === 0 || longerThan(value, IMAGE_URL_MAX_LENGTH)) {
    return false;
  }
  if (value.trim() !== value || hasForbiddenCharacters(value) || /\s/.test(value)) return false;
  if (!IMAGE_URL_START.test(value)) return false;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    url.hostname.length > 0 &&
    url.username === '' &&
    url.password === ''
  );
}

/**
 * The rules of a message's fields, one per field, each checking in a fixed order; which field
 * is read when is declared in client-payloads.ts. `content` is kept verbatim (clients escape
 * on output).
 */
export const TEXT_CONTENT = required<string, string>(
  'string (1–1000 characters, not blank)',
  ['CONTENT_REQUIRED', 'MESSAGE_TOO_LONG', 'INVALID_CONTENT'],
  (value) => {
    const content = readContent(value);
    if (longerThan(content, TEXT_MAX_CHARACTERS)) {
      throw new AppError('MESSAGE_TOO_LONG');
    }
    if (hasForbiddenCharacters(content)) throw new AppError('INVALID_CONTENT');
    return content;
  },
);

export const EMOJI_CONTENT = required<string, string>(
  'string (emoji only, ≤ 16 code points)',
  ['CONTENT_REQUIRED', 'INVALID_EMOJI'],
  (value) => {
    const content = readContent(value);
    if (!isEmoji(content)) throw new AppError('INVALID_EMOJI');
    return content;
  },
);

export const IMAGE_URL = required<string, string>('string (http(s) URL, ≤ 2048 characters)', ['INVALID_IMAGE_URL'], (value) => {
  if (!isImageUrl(value)) throw new AppError('INVALID_IMAGE_URL');
  return value;
});

export const CLIENT_MESSAGE_ID = optional<string, string | null>(
  'string (1–64 characters)',
  ['INVALID_CLIENT_MESSAGE_ID'],
  (value) => {
    if (value === undefined || value === null) return null;
    if (
      typeof value !== 'string' ||
      value.length === 0 ||
      longerThan(value, CLIENT_MESSAGE_ID_MAX_LENGTH) ||
      hasForbiddenCharacters(value)
    ) {
      throw new AppError('INVALID_CLIENT_MESSAGE_ID');
    }
    return value;
  },
);

/**
 * Whether the text has more than `max` characters, counted as the contract counts them
 * everywhere (§0): Unicode code points, so 😀 is one character, not two UTF-16 units. The UTF-16
 * length is a cheap upper bound: at or under `max`, no need to count.
 */
function longerThan(text: string, max: number): boolean {
  return text.length > max && codePointLength(text) > max;
}

/** Content that shows nothing (only spaces and invisible characters, text-rules.ts) is no content. */
function readContent(value: unknown): string {
  if (typeof value !== 'string' || isInvisibleOnly(value)) throw new AppError('CONTENT_REQUIRED');
  return value;
}
