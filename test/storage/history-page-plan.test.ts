import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, createMessagesRepository, type Database, type MessagesRepository } from '@chat/db';
import { createTestDatabase, type TestDatabase } from '@chat/testing';

/**
 * The history page is the busiest read, and planning it over `messages`' day partitions and
 * their indexes cost several times its execution. A prepared statement is planned once only
 * when Postgres keeps its generic plan, which it does not when `LIMIT` is a parameter (costed
 * as 10% of the room). One connection, so every call runs on the session the check reads.
 */
describe('history page statement', () => {
  let testDb: TestDatabase;
  let database: Database;
  let repository: MessagesRepository;
  let roomId: string;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = createDatabase({ url: testDb.url, maxConnections: 1 });
    repository = createMessagesRepository(database.sql);
    const userId = randomUUID();
    roomId = randomUUID();
    await database.sql`insert into users (id, nickname) values (${userId}, '작성자')`;
    await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      values (${roomId}, 'plan', ${userId}, 1, now(), now() + interval '1 day')`;
    // Enough rows that a parameterised LIMIT makes the generic plan look dearer than a custom one.
    await database.sql`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
      select gen_random_uuid(), r.id, ${userId}, 'text', 'message ' || g, g, now(), r.expires_at
      from generate_series(1, 30000) g, rooms r where r.id = ${roomId}`;
    await database.sql`update rooms set last_seq = 30000 where id = ${roomId}`;
    await database.sql`analyze messages`;
  });

  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  const plans = async () =>
    database.sql<{ generic_plans: number; custom_plans: number }[]>`
      select generic_plans::int, custom_plans::int from pg_prepared_statements
      where statement like '%from messages m join users u%' and statement like '%order by m.seq desc%'
        and statement not like '%pg_prepared_statements%'`;

  it('keeps its generic plan after the first executions instead of planning every page', async () => {
    for (let i = 0; i < 12; i++) {
      const rows = await repository.page(roomId, { afterSeq: null, beforeSeq: 30000 - i * 51, order: 'newest', limit: 51 });
      expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: 51 }, (_, k) => 30000 - i * 51 - 1 - k));
    }
    const [statement, ...others] = await plans();
    expect(others).toEqual([]);
    // Postgres tries custom plans for the first five executions, then settles.
    expect(statement!.custom_plans).toBeLessThanOrEqual(5);
    expect(statement!.generic_plans).toBeGreaterThanOrEqual(7);
  });

  it('prepares a few statements whatever limits are asked for, and returns exactly the rows asked for', async () => {
    for (let limit = 1; limit <= 101; limit++) {
      const rows = await repository.page(roomId, { afterSeq: null, beforeSeq: 1000, order: 'oldest', limit });
      expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: limit }, (_, k) => k + 1));
    }
    const oldest = await database.sql<{ n: number }[]>`
      select count(*)::int as n from pg_prepared_statements
      where statement like '%from messages m join users u%' and statement like '%order by m.seq asc%'
        and statement not like '%pg_prepared_statements%'`;
    expect(oldest[0]!.n).toBeLessThanOrEqual(4);
  });
});
