import { describe, expect, it } from 'vitest';
import { DueSchedule } from '../src/lib/due-schedule.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('DueSchedule', () => {
  it('calls each item once, in order of its moment and never before it, on one timer', async () => {
    const fired: { item: string; at: number }[] = [];
    const schedule = new DueSchedule<string>((item) => fired.push({ item, at: Date.now() }));
    const now = Date.now();
    const due = { c: now + 120, a: now + 40, b: now + 80, a2: now + 40 };
    for (const [item, at] of Object.entries(due)) schedule.add(item, at);
    await sleep(250);
    expect(fired.map((f) => f.item)).toEqual(['a', 'a2', 'b', 'c']);
    for (const { item, at } of fired) expect(at).toBeGreaterThanOrEqual(due[item as keyof typeof due]);
    expect(schedule.size).toBe(0);
  });

  it('forgets a removed item, also the earliest one, and keeps the others', async () => {
    const fired: string[] = [];
    const schedule = new DueSchedule<string>((item) => fired.push(item));
    const now = Date.now();
    schedule.add('early', now + 30);
    schedule.add('late', now + 90);
    schedule.add('also-late', now + 90);
    schedule.remove('early', now + 30);
    schedule.remove('also-late', now + 90);
    schedule.remove('never-added', now + 90);
    expect(schedule.size).toBe(1);
    await sleep(160);
    expect(fired).toEqual(['late']);
  });

  it('re-arms in steps for a moment further away than one step, and an item removed on its own call is no trouble', async () => {
    const fired: string[] = [];
    const schedule: DueSchedule<string> = new DueSchedule<string>(
      (item) => {
        fired.push(item);
        schedule.remove(item, at);
      },
      { maxStepMs: 30 },
    );
    const at = Date.now() + 100;
    schedule.add('x', at);
    await sleep(60);
    expect(fired).toEqual([]);
    await sleep(120);
    expect(fired).toEqual(['x']);
  });

  it('fires at once for a moment already past', async () => {
    const fired: string[] = [];
    const schedule = new DueSchedule<string>((item) => fired.push(item));
    schedule.add('past', Date.now() - 1000);
    await sleep(20);
    expect(fired).toEqual(['past']);
  });
});
