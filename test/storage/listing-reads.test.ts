import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { createDatabase, createMembershipsRepository, createRoomsRepository } from '@chat/db';
import { databaseTest } from '../support/index.ts';

/**
 * What a page of a listing reads must not grow with what one user can pile up (a resource
 * review): the room listing with 20,000 swept rooms (tombstones) newer than every live one, and
 * a member list page of a room of 20,000 members. Counted as rows and index entries read from
 * the table (pg_stat_user_tables / pg_stat_user_indexes, on a connection of its own), whatever
 * plan Postgres picks.
 */
const TOMBSTONES = 20_000;
const MEMBERS = 20_000;
const PAGE = 50;

const it = databaseTest({ maxConnections: 2 });

/** Rows and index entries of `table` read by `work`, on a connection of its own. */
async function readsOf(url: string, table: string, work: (db: ReturnType<typeof createDatabase>) => Promise<void>): Promise<number> {
  const reader = createDatabase({ url, maxConnections: 1 });
  const total = async () => {
    const [row] = await reader.sql<{ n: string }[]>`
      select (coalesce((select seq_tup_read from pg_stat_user_tables where relname = ${table}), 0)
            + coalesce((select sum(idx_tup_read) from pg_stat_user_indexes where relname = ${table}), 0))::text as n`;
    return Number(row!.n);
  };
  try {
    const before = await total();
    const worker = createDatabase({ url, maxConnections: 1 });
    try {
      await work(worker);
      await worker.sql`select pg_stat_force_next_flush()`;
      await worker.sql`select 1`;
    } finally {
      await worker.close();
    }
    return (await total()) - before;
  } finally {
    await reader.close();
  }
}

it('a room listing page reads about a page of rooms, not the tombstones newer than them', async ({ sql, testDb }) => {
  const owner = randomUUID();
  await sql`insert into users (id, nickname) values (${owner}, '방장')`;
  await sql`insert into rooms (id, name, created_by, created_at, expires_at)
    select gen_random_uuid(), 'live', ${owner}, now() - interval '1 hour' - n * interval '1 second', now() + interval '1 day'
    from generate_series(1, ${PAGE * 2}) n`;
  await sql`insert into rooms (id, name, created_by, created_at, expires_at, expired_at)
    select gen_random_uuid(), 'gone', ${owner}, now() - n * interval '1 millisecond', now() - interval '1 minute', now()
    from generate_series(1, ${TOMBSTONES}) n`;
  await sql`analyze rooms`;
  let listed: string[] = [];
  const read = await readsOf(testDb.url, 'rooms', async (db) => {
    listed = (await createRoomsRepository(db.db).listActive(PAGE + 1, null)).map((room) => room.name);
  });
  expect(listed).toHaveLength(PAGE + 1);
  expect(new Set(listed)).toEqual(new Set(['live']));
  // Before migration 0009: every tombstone was read on the way (≥ 20,000).
  expect(read, `rows and index entries of rooms read: ${read}`).toBeLessThan(PAGE * 4);
});

it('a member list page reads about a page of memberships, not the whole room', async ({ sql, testDb }) => {
  const roomId = randomUUID();
  const viewer = randomUUID();
  await sql`insert into users (id, nickname) select gen_random_uuid(), '회원' from generate_series(1, ${MEMBERS - 1})`;
  await sql`insert into users (id, nickname) values (${viewer}, '보는이')`;
  await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
    values (${roomId}, 'big', ${viewer}, ${MEMBERS}, now(), now() + interval '1 day')`;
  await sql`insert into room_members (room_id, user_id, joined_at)
    select ${roomId}, id, now() - row_number() over (order by id) * interval '1 millisecond' from users`;
  await sql`analyze users, rooms, room_members`;
  let facts: Awaited<ReturnType<ReturnType<typeof createMembershipsRepository>['memberListFacts']>> | undefined;
  let page: { userId: string }[] = [];
  const read = await readsOf(testDb.url, 'room_members', async (db) => {
    const memberships = createMembershipsRepository(db.sql);
    const first = await memberships.listMembers(roomId, { limit: PAGE + 1, after: null });
    facts = await memberships.memberListFacts(roomId, viewer, first[PAGE - 1]!.userId);
    page = await memberships.listMembers(roomId, { limit: PAGE + 1, after: facts.after });
  });
  expect(facts).toMatchObject({ total: MEMBERS, viewerIsMember: true });
  expect(page).toHaveLength(PAGE + 1);
  // Before: a count of every member, and a sort of all of them for each page (≥ 60,000).
  expect(read, `rows and index entries of room_members read: ${read}`).toBeLessThan(PAGE * 8);
});
