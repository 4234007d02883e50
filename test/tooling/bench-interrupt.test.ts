import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { interruptAfter } from './interrupt.ts';

/**
 * README: the benches make a private database (`chat_bench_*`) and drop it at the end, Ctrl-C
 * included. `pnpm bench:purge` (the cheapest) is interrupted while it fills its first day, and
 * Ctrl-C is pressed again while it cleans up: the database must still be dropped.
 */
const admin = postgres('postgres://postgres@127.0.0.1:5432/postgres', { max: 1, onnotice: () => {} });
afterAll(() => admin.end({ timeout: 5 }));

describe('an interrupted bench', () => {
  it('drops its database even when Ctrl-C comes twice', async () => {
    const { output, signalled } = await interruptAfter('bench:purge', [], /database (chat_bench_purge_[0-9a-f]+)/, {
      again: /interrupted: cleaning up/,
    });
    expect(signalled, output).toBe(true);
    const name = /database (chat_bench_purge_[0-9a-f]+)/.exec(output)![1]!;
    const left = await admin`select datname from pg_database where datname = ${name}`;
    expect(left, output).toEqual([]);
  }, 60_000);
});
