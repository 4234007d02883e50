import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, createMessagesRepository, type Database, type NewMessage } from '@chat/db';
import { createTestDatabase, type TestDatabase } from '@chat/testing';

/**
 * Issue 17: how the group commit's statement finds its rooms. Locking them as `id = any(<ids>)`,
 * an array the planner cannot see the length of, Postgres read the whole `rooms` table for every
 * batch while the table held fewer than ~1,500 rooms: at 1,000 rooms, a quarter of a small
 * batch's Postgres CPU (BENCHMARKS.md). The counter of sequential scans of `rooms` must not move
 * while a writer's batches run. (The plain form, which every batch without a retry takes; the
 * dedupe form, for batches holding a retry, still updates its rooms through a hash join that
 * reads the table at this size.)
 */
const ROOMS = 1_000;
const BATCHES = 12;

describe('the batch statement at 1,000 rooms', () => {
  let testDb: TestDatabase;
  let database: Database;
  let userId: string;
  let roomIds: string[];

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = createDatabase({ url: testDb.url, maxConnections: 2 });
    userId = randomUUID();
    await database.sql`insert into users (id, nickname) values (${userId}, '작성자')`;
    roomIds = Array.from({ length: ROOMS }, () => randomUUID());
    await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      select id::uuid, 'plan', ${userId}, 1, now(), now() + interval '1 day'
      from json_array_elements_text(${JSON.stringify(roomIds)}::text::json) as x(id)`;
    await database.sql`analyze rooms`;
  });
  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  const roomSeqScans = async (): Promise<number> => {
    const [row] = await database.sql<{ n: string }[]>`select seq_scan::text as n from pg_stat_user_tables where relname = 'rooms'`;
    return Number(row?.n ?? 0);
  };

  const message = (roomId: string, clientMessageId: string | null): NewMessage => ({
    id: randomUUID(),
    roomId,
    userId,
    type: 'text',
    content: 'plan',
    imageUrl: null,
    clientMessageId,
    createdAt: new Date(),
  });

  for (const ids of ['without', 'with'] as const) {
    it(`locks and advances a batch's rooms by their key (${ids} clientMessageIds)`, async () => {
      const before = await roomSeqScans();
      const writer = createDatabase({ url: testDb.url, maxConnections: 1 });
      try {
        const messages = createMessagesRepository(writer.sql);
        for (let batch = 0; batch < BATCHES; batch++) {
          const batchMessages = [0, 1, 2].map((k) => message(roomIds[(batch * 3 + k * 331) % ROOMS]!, ids === 'with' ? randomUUID() : null));
          const outcomes = await messages.insertBatch(batchMessages);
          expect(outcomes.map((outcome) => outcome.status)).toEqual(['stored', 'stored', 'stored']);
        }
        // A backend reports its table counters at most once a second unless told to: then it
        // does when the transaction after this one ends.
        await writer.sql`select pg_stat_force_next_flush()`;
        await writer.sql`select 1`;
      } finally {
        await writer.close();
      }
      // A control: the counter does count this backend's scans (a read of the whole table).
      const control = createDatabase({ url: testDb.url, maxConnections: 1 });
      try {
        await control.sql`select count(*) from rooms where name = 'plan'`;
        await control.sql`select pg_stat_force_next_flush()`;
        await control.sql`select 1`;
      } finally {
        await control.close();
      }
      expect(await roomSeqScans()).toBe(before + 1);
    });
  }
});
