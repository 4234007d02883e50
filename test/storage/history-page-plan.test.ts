import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { createMessagesRepository, type Database, type MessagesRepository } from '@chat/db';
import { databaseTest } from '../support/index.ts';

const it = databaseTest({ maxConnections: 1 });

/**
 * The history page is the busiest read, and planning it over `messages`' day partitions and
 * their indexes cost several times its execution. A prepared statement is planned once only
 * when Postgres keeps its generic plan, which it does not when `LIMIT` is a parameter (costed
 * as 10% of the room). One connection, so every call runs on the session the check reads.
 */
describe('history page statement', () => {
  let database: Database;
  let repository: MessagesRepository;
  let roomId: string;

  it.beforeAll(async ({ database: db }) => {
    database = db;
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
    // …and many small rooms beside it, as in service: a custom plan for the big room then
    // estimates it from the column's statistics, far cheaper than the generic plan's average
    // room, and (with the room id a plain parameter) Postgres never switched to the generic plan.
    await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      select gen_random_uuid(), 'small ' || g, ${userId}, 1, now(), now() + interval '1 day' from generate_series(1, 60) g`;
    await database.sql`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
      select gen_random_uuid(), r.id, ${userId}, 'text', 'small', g, now(), r.expires_at
      from rooms r, generate_series(1, 200) g where r.name like 'small %'`;
    await database.sql`analyze messages`;
  });

  /** The newest-first page statements prepared on the connection, behind a cursor or not. */
  const plans = async (cursor: boolean) =>
    database.sql<{ generic_plans: number; custom_plans: number }[]>`
      select generic_plans::int, custom_plans::int from pg_prepared_statements
      where statement like '%from messages m join users u%' and statement like '%order by m.seq desc%'
        and (statement like '%before_seq%') = ${cursor} and statement not like '%pg_prepared_statements%'`;

  const idAt = async (seq: number) =>
    (await database.sql<{ id: string }[]>`select /* test */ id from messages where room_id = ${roomId} and seq = ${seq}`)[0]!.id;

  it('keeps its generic plan after the first executions instead of planning every page, its cursor read in the same statement', async () => {
    for (let i = 0; i < 12; i++) {
      const beforeId = await idAt(30000 - i * 51);
      const page = await repository.page(roomId, { afterId: null, beforeId, order: 'newest', limit: 51 });
      expect(page.missingAnchor).toBeNull();
      expect(page.rows.map((row) => row.seq)).toEqual(Array.from({ length: 51 }, (_, k) => 30000 - i * 51 - 1 - k));
    }
    for (let i = 0; i < 12; i++) {
      const page = await repository.page(roomId, { afterId: null, beforeId: null, order: 'newest', limit: 51 });
      expect(page.rows[0]!.seq).toBe(30000);
    }
    const [newest, ...moreNewest] = await plans(false);
    expect(moreNewest).toEqual([]);
    expect(newest!.custom_plans).toBeLessThanOrEqual(5);
    expect(newest!.generic_plans).toBeGreaterThanOrEqual(7);
    // One statement per page: the cursor is not looked up by a statement of its own.
    const [statement, ...others] = await plans(true);
    expect(others).toEqual([]);
    const lookups = await database.sql`
      select 1 from pg_prepared_statements
      where statement like '%from messages%' and statement not like '%join users%'
        and statement not like '%/* test */%' and statement not like '%pg_prepared_statements%'`;
    expect(lookups).toHaveLength(0);
    // Postgres tries custom plans for the first five executions, then settles.
    expect(statement!.custom_plans).toBeLessThanOrEqual(5);
    expect(statement!.generic_plans).toBeGreaterThanOrEqual(7);
  });

  it('prepares a few statements whatever limits are asked for, and returns exactly the rows asked for', async () => {
    const beforeId = await idAt(1000);
    for (let limit = 1; limit <= 101; limit++) {
      const page = await repository.page(roomId, { afterId: null, beforeId, order: 'oldest', limit });
      expect(page.rows.map((row) => row.seq)).toEqual(Array.from({ length: limit }, (_, k) => k + 1));
    }
    const oldest = await database.sql<{ n: number }[]>`
      select count(*)::int as n from pg_prepared_statements
      where statement like '%from messages m join users u%' and statement like '%order by m.seq asc%'
        and statement not like '%pg_prepared_statements%'`;
    expect(oldest[0]!.n).toBeLessThanOrEqual(4);
  });

  it('tells a cursor that names no message of the room from an empty page', async () => {
    const otherRoom = randomUUID();
    const [owner] = await database.sql<{ id: string }[]>`select user_id as id from messages where room_id = ${roomId} limit 1`;
    await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      values (${otherRoom}, 'other', ${owner!.id}, 1, now(), now() + interval '1 day')`;
    const first = await idAt(1);
    const last = await idAt(30000);
    // Before the first message and after the last: found, nothing to show.
    expect(await repository.page(roomId, { afterId: null, beforeId: first, order: 'newest', limit: 11 })).toEqual({ rows: [], missingAnchor: null });
    expect(await repository.page(roomId, { afterId: last, beforeId: null, order: 'oldest', limit: 11 })).toEqual({ rows: [], missingAnchor: null });
    // Between two cursors.
    const between = await repository.page(roomId, { afterId: await idAt(10), beforeId: await idAt(14), order: 'oldest', limit: 11 });
    expect(between.rows.map((row) => row.seq)).toEqual([11, 12, 13]);
    // A message of another room, or no message at all: the cursor is missing (before first).
    expect((await repository.page(otherRoom, { afterId: null, beforeId: first, order: 'newest', limit: 11 })).missingAnchor).toBe('before');
    expect((await repository.page(roomId, { afterId: randomUUID(), beforeId: null, order: 'oldest', limit: 11 })).missingAnchor).toBe('after');
    expect((await repository.page(roomId, { afterId: randomUUID(), beforeId: randomUUID(), order: 'oldest', limit: 11 })).missingAnchor).toBe('before');
    expect((await repository.page(roomId, { afterId: randomUUID(), beforeId: last, order: 'oldest', limit: 11 })).missingAnchor).toBe('after');
  });
});
