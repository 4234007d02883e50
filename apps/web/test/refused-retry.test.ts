import { describe, expect, it } from 'vitest';
import { REFUSED_RETRY_MS, REFUSED_RETRY_SPREAD_MS, refusedRetryDelayMs } from '../client/refused-retry.ts';

describe('retrying a refused handshake', () => {
  it('waits 2-5 s when the server gave no time', () => {
    expect(refusedRetryDelayMs(undefined, 0)).toBe(REFUSED_RETRY_MS);
    expect(refusedRetryDelayMs({ code: 'UNAVAILABLE' }, 0.5)).toBe(REFUSED_RETRY_MS + REFUSED_RETRY_SPREAD_MS / 2);
    expect(refusedRetryDelayMs({ code: 'TOO_MANY_REQUESTS' }, 0.999)).toBeLessThan(REFUSED_RETRY_MS + REFUSED_RETRY_SPREAD_MS);
  });

  it("waits at least the server's retryAfterMs, spread, when its handshake budget is spent", () => {
    // A budget of 120 a minute spent 20 s ago: retrying in 2-5 s would be refused again.
    expect(refusedRetryDelayMs({ code: 'TOO_MANY_REQUESTS', retryAfterMs: 40_000 }, 0)).toBe(40_000);
    expect(refusedRetryDelayMs({ code: 'TOO_MANY_REQUESTS', retryAfterMs: 40_000 }, 0.5)).toBe(40_000 + REFUSED_RETRY_SPREAD_MS / 2);
    // A shorter time than the usual wait does not make it sooner.
    expect(refusedRetryDelayMs({ code: 'TOO_MANY_REQUESTS', retryAfterMs: 300 }, 0)).toBe(REFUSED_RETRY_MS);
  });

  it('ignores a time that is not a sane number of milliseconds', () => {
    for (const retryAfterMs of ['40000', Number.NaN, Number.POSITIVE_INFINITY, -5, null]) {
      expect(refusedRetryDelayMs({ retryAfterMs }, 0)).toBe(REFUSED_RETRY_MS);
    }
    // Longer than a budget's window: at most a minute.
    expect(refusedRetryDelayMs({ retryAfterMs: 3_600_000 }, 0)).toBe(60_000);
  });
});
