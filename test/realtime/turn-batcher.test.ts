import { describe, expect, it } from 'vitest';
import { createTurnBatcher } from '../../apps/gateway/src/lib/turn-batcher.ts';

/** The handshakes' shared lookup (lib/turn-batcher.ts): one call of `run` per loop turn. */
describe('createTurnBatcher', () => {
  const recording = <I, O>(answer: (inputs: I[]) => O[] | Promise<O[]>) => {
    const batches: I[][] = [];
    const run = async (inputs: I[]) => {
      batches.push(inputs);
      return answer(inputs);
    };
    return { batches, run };
  };
  /** Calls made from separate callbacks of one check phase, as handshakes resumed in one poll are. */
  const inOneTurn = <T>(calls: (() => Promise<T>)[]) =>
    new Promise<Promise<T>[]>((resolve) => {
      const made: Promise<T>[] = [];
      for (const call of calls) {
        setImmediate(() => {
          made.push(call());
          if (made.length === calls.length) resolve(made);
        });
      }
    });

  it('answers the calls of one turn with one run, each its own output', async () => {
    const { batches, run } = recording((inputs: number[]) => inputs.map((n) => n * 10));
    const load = createTurnBatcher(run, { maxBatch: 100 });
    const made = await inOneTurn([1, 2, 3, 4].map((n) => () => load(n)));
    expect(await Promise.all(made)).toEqual([10, 20, 30, 40]);
    expect(batches).toEqual([[1, 2, 3, 4]]);
  });

  it('calls in later turns go in later runs, and a lone call is not held back', async () => {
    const { batches, run } = recording((inputs: string[]) => inputs);
    const load = createTurnBatcher(run, { maxBatch: 100 });
    expect(await load('a')).toBe('a');
    expect(await load('b')).toBe('b');
    expect(batches).toEqual([['a'], ['b']]);
  });

  it('splits a turn into runs of at most maxBatch', async () => {
    const { batches, run } = recording((inputs: number[]) => inputs);
    const load = createTurnBatcher(run, { maxBatch: 3 });
    const made = await inOneTurn(Array.from({ length: 7 }, (_, i) => () => load(i)));
    expect(await Promise.all(made)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(batches).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
  });

  it('a failed run rejects its own calls only, and the batcher keeps working', async () => {
    let runs = 0;
    const load = createTurnBatcher(
      async (inputs: number[]) => {
        runs++;
        if (runs === 1) throw new Error('database away');
        return inputs;
      },
      { maxBatch: 2 },
    );
    const made = await inOneTurn([1, 2, 3].map((n) => () => load(n)));
    const settled = await Promise.allSettled(made);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
    expect(await load(9)).toBe(9);
  });

  it('a run that throws synchronously, or answers with too few outputs, rejects its calls instead of hanging or mixing them up', async () => {
    const throwing = createTurnBatcher(
      (() => {
        throw new Error('sync');
      }) as (inputs: number[]) => Promise<number[]>,
      { maxBatch: 10 },
    );
    await expect(throwing(1)).rejects.toThrow('sync');
    const short = createTurnBatcher(async (inputs: number[]) => inputs.slice(1), { maxBatch: 10 });
    const made = await inOneTurn([1, 2].map((n) => () => short(n)));
    const settled = await Promise.allSettled(made);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
  });
});
