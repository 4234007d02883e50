import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, partitionName, type Database } from '@chat/db';
import { createTestDatabase, type TestDatabase } from '@chat/testing';
import { fillAndDropDay, fillExpiredDay, messagesSize, ROWS_PER_ROOM } from '../bench/lib/purge-day.ts';

/**
 * What `pnpm bench` (and `bench:purge`) report as purging a day of messages: the day really
 * holds the rows the figure names, and the worker's partition drop really removes them.
 */
describe('the benchmarks\' day purge', () => {
  let testDb: TestDatabase;
  let database: Database;
  let userId: string;
  const daysAgo = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = createDatabase({ url: testDb.url, maxConnections: 1 });
    userId = randomUUID();
    await database.sql`insert into users (id, nickname) values (${userId}, 'bench')`;
  });
  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  it('fills a past day with expired rooms of ROWS_PER_ROOM messages in its own partition', async () => {
    const day = daysAgo(4);
    const { roomIds } = await fillExpiredDay(database.sql, userId, day, 2);
    const [counts] = await database.sql<{ rows: number; live: number }[]>`
      select (select count(*)::int from ${database.sql(partitionName(day))}) as rows,
             (select count(*)::int from rooms where id = any(${roomIds}::uuid[]) and expired_at is null) as live`;
    expect(counts).toEqual({ rows: 2 * ROWS_PER_ROOM, live: 0 });
  });

  it('drops the day as the partition job does: its rows and their bytes are gone', async () => {
    const day = daysAgo(3);
    const drop = await fillAndDropDay(database.sql, userId, day, 3);
    expect(drop.rows).toBe(3 * ROWS_PER_ROOM);
    expect(drop.estimatedRows).toBeGreaterThan(0);
    expect(drop.bytesAfter).toBeLessThan(drop.bytesBefore);
    const [left] = await database.sql<{ exists: boolean }[]>`select to_regclass(${partitionName(day)}) is not null as exists`;
    expect(left!.exists).toBe(false);
    expect(await messagesSize(database.sql)).toBe(drop.bytesAfter);
  });
});
