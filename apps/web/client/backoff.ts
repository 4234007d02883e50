/**
 * How long to wait before trying something again: exponential backoff with jitter. No DOM and
 * no network: unit-tested in apps/web/test.
 */

export interface Backoff {
  /** The wait before the first retry (at most: half of it is spread at random). */
  readonly baseMs: number;
  /** The longest wait, however many attempts failed. */
  readonly maxMs: number;
}

/**
 * The wait before retry number `attempt` (1, 2, 3, …): `baseMs · 2^(attempt − 1)`, at most
 * `maxMs`, of which the upper half is spread at random, so that pages that failed together (a
 * pod died under all of them) do not come back together. `random` is in [0, 1).
 */
export function backoffMs(attempt: number, random: number, { baseMs, maxMs }: Backoff): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt, 30) - 1));
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}
