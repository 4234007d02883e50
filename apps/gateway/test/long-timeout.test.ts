import { describe, expect, it } from 'vitest';
import { setLongTimeout } from '../src/lib/long-timeout.ts';

/**
 * setTimeout holds at most 2^31−1 ms (about 24.8 days); a longer delay fires after 1 ms. A
 * token's expiry can be further away than that, so its timer is armed in steps (issue 18, point 4).
 */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('setLongTimeout', () => {
  it('fires once, not before the delay, when the delay spans several steps', async () => {
    const started = Date.now();
    const fired = await new Promise<number>((resolve) => {
      setLongTimeout(() => resolve(Date.now()), 230, { maxStepMs: 50 });
    });
    expect(fired - started).toBeGreaterThanOrEqual(229);
  });

  it('fires for a delay of exactly one step, and for a delay already past', async () => {
    let count = 0;
    setLongTimeout(() => count++, 40, { maxStepMs: 40 });
    setLongTimeout(() => count++, -5, { maxStepMs: 40 });
    await sleep(150);
    expect(count).toBe(2);
  });

  it('can be cancelled between steps', async () => {
    let fired = false;
    const cancel = setLongTimeout(() => (fired = true), 200, { maxStepMs: 30 });
    await sleep(80);
    cancel();
    await sleep(250);
    expect(fired).toBe(false);
  });

  it('does not fire early for a delay beyond what setTimeout holds (30 days)', async () => {
    let fired = false;
    const cancel = setLongTimeout(() => (fired = true), 30 * 86_400_000);
    await sleep(50);
    expect(fired).toBe(false);
    cancel();
  });
});
