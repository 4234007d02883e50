import { describe, expect, it } from 'vitest';
import { EventSlots } from '../src/realtime/event-slots.ts';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('EventSlots', () => {
  it('runs at most `concurrent` tasks at once, starts the rest in arrival order, and settles every one', async () => {
    const reading: boolean[] = [];
    const slots = new EventSlots(3, 8, (value) => reading.push(value));
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const results = Array.from({ length: 20 }, (_, index) =>
      slots.run(async () => {
        started.push(index);
        running += 1;
        most = Math.max(most, running);
        await tick();
        running -= 1;
        if (index === 5) throw new Error('five');
        return index;
      }),
    );
    const settled = await Promise.allSettled(results);
    expect(most).toBe(3);
    expect(started).toEqual([...Array(20).keys()]);
    expect(settled[5]).toMatchObject({ status: 'rejected', reason: new Error('five') });
    expect(settled.filter((s) => s.status === 'fulfilled').map((s) => (s as PromiseFulfilledResult<number>).value)).toEqual(
      [...Array(20).keys()].filter((i) => i !== 5),
    );
    // 17 waited at the peak, past the backlog of 8: reading stopped, then resumed once down to 2.
    expect(reading[0]).toBe(false);
    expect(reading.at(-1)).toBe(true);
  });

  it('never stops reading while the backlog stays short', async () => {
    const reading: boolean[] = [];
    const slots = new EventSlots(2, 8, (value) => reading.push(value));
    await Promise.all(Array.from({ length: 9 }, () => slots.run(tick)));
    expect(reading).toEqual([]);
  });
});
