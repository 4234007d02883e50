/**
 * When to try a refused handshake again (a `connect_error` the server answered, which
 * Socket.IO does not retry on its own). No DOM and no network: unit-tested in apps/web/test.
 */

/** The least wait: a refusal for a database that is away (UNAVAILABLE) is worth a retry soon. */
export const REFUSED_RETRY_MS = 2000;
/** Spread on top, so that a crowd refused at once does not return at once. */
export const REFUSED_RETRY_SPREAD_MS = 3000;
/** The longest wait a server's `retryAfterMs` can ask for (a handshake budget is per minute). */
const RETRY_AFTER_MAX_MS = 60_000;

/**
 * The wait before retrying a refused handshake: 2–5 s, or, when the server said how long its
 * budget is spent (`TOO_MANY_REQUESTS` with `retryAfterMs`, PROTOCOL §1), that long plus the
 * spread: a retry before then would be refused again, and each refusal costs the server a
 * signature check and a budget lookup. `random` is in [0, 1).
 */
export function refusedRetryDelayMs(data: unknown, random: number): number {
  const retryAfterMs = typeof data === 'object' && data !== null ? (data as { retryAfterMs?: unknown }).retryAfterMs : undefined;
  const floor =
    typeof retryAfterMs === 'number' && Number.isFinite(retryAfterMs) && retryAfterMs > REFUSED_RETRY_MS
      ? Math.min(retryAfterMs, RETRY_AFTER_MAX_MS)
      : REFUSED_RETRY_MS;
  return floor + random * REFUSED_RETRY_SPREAD_MS;
}
