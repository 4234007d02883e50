/**
 * Reading untrusted payloads. Socket.IO hands us whatever JSON the client sent: only own
 * properties are read (a `__proto__` key arrives as an own key and must never reach a
 * prototype), and no payload object is ever spread or merged into ours.
 */
export type UntrustedRecord = Readonly<Record<string, unknown>>;

export function isRecord(value: unknown): value is UntrustedRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function field(record: UntrustedRecord, key: string): unknown {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && value.length === 36 && UUID.test(value);
}

/** Unicode code points, counted without allocating for the common short case. */
export function codePointLength(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

/**
 * C0 controls other than tab / line feed / carriage return, DEL, C1 controls, unpaired
 * surrogates, and the bidirectional embeddings, overrides and isolates (U+202A–U+202E,
 * U+2066–U+2069). Postgres rejects U+0000 outright, the other controls corrupt what clients
 * render, and a bidi override makes text display other than it reads (`invoice\u202Efdp.exe` shows
 * as `invoiceexe.pdf`): refused in every string a client sends that others see (text-rules.ts).
 */
const FORBIDDEN_CHARACTERS =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export function hasForbiddenCharacters(text: string): boolean {
  return FORBIDDEN_CHARACTERS.test(text);
}
