import { describe, expect, it } from 'vitest';
import { EventSlots, type SlotState } from '../src/realtime/event-slots.ts';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));
type Owner = { data: SlotState; reading: boolean[] };
const owner = (): Owner => ({ data: { inFlight: 0 }, reading: [] });
const slotsOf = (concurrent: number, backlog: number) =>
  new EventSlots<Owner>(concurrent, backlog, (socket, value) => socket.reading.push(value));

describe('EventSlots', () => {
  it('runs at most `concurrent` tasks at once, starts the rest in arrival order, and settles every one', async () => {
    const socket = owner();
    const slots = slotsOf(3, 8);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const results = Array.from({ length: 20 }, (_, index) =>
      slots.run(socket, async () => {
        started.push(index);
        running += 1;
        most = Math.max(most, running);
        await tick();
        running -= 1;
        if (index === 5) throw new Error('five');
        return index;
      }),
    );
    expect(socket.data.inFlight).toBe(20);
    const settled = await Promise.allSettled(results);
    expect(most).toBe(3);
    expect(started).toEqual([...Array(20).keys()]);
    expect(settled[5]).toMatchObject({ status: 'rejected', reason: new Error('five') });
    expect(settled.filter((s) => s.status === 'fulfilled').map((s) => (s as PromiseFulfilledResult<number>).value)).toEqual(
      [...Array(20).keys()].filter((i) => i !== 5),
    );
    // 17 waited at the peak, past the backlog of 8: reading stopped, then resumed once down to 2.
    expect(socket.reading[0]).toBe(false);
    expect(socket.reading.at(-1)).toBe(true);
    // Nothing of the burst stays on the socket.
    expect(socket.data).toEqual({ inFlight: 0, backlog: undefined });
  });

  it('never stops reading while the backlog stays short', async () => {
    const socket = owner();
    const slots = slotsOf(2, 8);
    await Promise.all(Array.from({ length: 9 }, () => slots.run(socket, tick)));
    expect(socket.reading).toEqual([]);
  });

  it("counts slots per socket: one socket's backlog does not hold back another's events", async () => {
    const busy = owner();
    const quiet = owner();
    const slots = slotsOf(1, 8);
    let release!: () => void;
    const blocked = slots.run(busy, () => new Promise<void>((resolve) => (release = resolve)));
    const queued = slots.run(busy, tick);
    expect(busy.data.backlog?.waiting.length).toBe(1);
    await slots.run(quiet, tick);
    expect(quiet.data.backlog).toBeUndefined();
    release();
    await Promise.all([blocked, queued]);
    expect(busy.data.inFlight).toBe(0);
  });

  it('runs an ordered event alone, after every earlier event and before every later one', async () => {
    const socket = owner();
    const slots = slotsOf(4, 64);
    const log: string[] = [];
    let running = 0;
    const task = (name: string, ms: number) => async () => {
      running += 1;
      log.push(`start ${name} (${running} running)`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      running -= 1;
      log.push(`end ${name}`);
    };
    await Promise.all([
      slots.run(socket, task('send1', 5)),
      slots.run(socket, task('send2', 1)),
      slots.run(socket, task('join', 1), true),
      slots.run(socket, task('send3', 1)),
      slots.run(socket, task('send4', 1)),
      slots.run(socket, task('leave', 1), true),
    ]);
    expect(log).toEqual([
      'start send1 (1 running)',
      'start send2 (2 running)',
      'end send2',
      'end send1',
      'start join (1 running)',
      'end join',
      'start send3 (1 running)',
      'start send4 (2 running)',
      expect.stringMatching(/^end send[34]$/),
      expect.stringMatching(/^end send[34]$/),
      'start leave (1 running)',
      'end leave',
    ]);
    expect(socket.data).toEqual({ inFlight: 0, backlog: undefined });
  });

  it('an ordered event on an idle socket starts at once, and a failing one releases the socket', async () => {
    const socket = owner();
    const slots = slotsOf(2, 8);
    let started = false;
    const first = slots.run(socket, async () => {
      started = true;
      throw new Error('refused');
    }, true);
    expect(started).toBe(true);
    await expect(first).rejects.toThrow('refused');
    expect(await slots.run(socket, async () => 'next')).toBe('next');
    expect(socket.data).toEqual({ inFlight: 0, backlog: undefined });
  });
});
