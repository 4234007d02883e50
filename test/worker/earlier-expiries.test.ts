import { randomUUID } from 'node:crypto';
import pino from 'pino';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDatabase,
  createMessagePartitionsRepository,
  createMessagesRepository,
  createRoomChangesRepository,
  createRoomLifetimeRepository,
  runMigrations,
  type Database,
} from '@chat/db';
import { runPartitionMaintenance } from '@chat/worker';
import { createTestDatabase, createTestDatabaseUpTo, type TestDatabase } from '@chat/testing';

import { DAY_MS, dayFromToday, messagePlacement, newMessage, partitionOf, seedRoomWithMessages, seedUser } from '../support/partitions.ts';

/**
 * Extending or closing a room leaves its messages where they are, under the expiry it had
 * (their partition key), and lists that expiry in `earlier_expiries` (migration 0013,
 * docs/partitions.md); reads look there too; the partition job moves them to the room's expiry
 * (deletes a closed room's) in short batches, and drops no day a room not yet swept still lists.
 * Until 0013 the extend moved every message in one statement under the room's lock. Real
 * Postgres; the database is this file's own (the job creates and drops days of all of it).
 */

const logger = pino({ level: 'silent' });

describe('a room extended or closed with its messages where they were', () => {
  let database: TestDatabase;
  let db: Database;
  let sql: Sql;
  let user: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ url: database.url, maxConnections: 4 });
    sql = postgres(database.url, { max: 2, onnotice: () => {} });
    user = await seedUser(sql, '연장');
  });
  afterAll(async () => {
    await sql?.end({ timeout: 5 });
    await db?.close();
    await database?.drop();
  });

  const message = (roomId: string, clientMessageId: string | null) => newMessage(roomId, user, clientMessageId);

  const makeRoom = (expiresAt: Date, count: number) => seedRoomWithMessages(sql, user, expiresAt, count);

  const earlier = async (roomId: string) =>
    (await sql<{ n: number }[]>`select cardinality(earlier_expiries)::int as n from rooms where id = ${roomId}`)[0]!.n;

  /** Every page of the room's history, newest first, `limit` a page: the seqs in the order read. */
  async function historySeqs(roomId: string, limit: number): Promise<number[]> {
    const messages = createMessagesRepository(db.sql);
    const seqs: number[] = [];
    let beforeId: string | null = null;
    for (;;) {
      const page = await messages.page(roomId, { afterId: null, beforeId, order: 'newest', limit: limit + 1 });
      expect(page.missingAnchor).toBeNull();
      seqs.push(...page.rows.slice(0, limit).map((row) => row.seq));
      if (page.rows.length <= limit) return seqs;
      beforeId = page.rows[limit - 1]!.id;
    }
  }

  /** The whole change feed of the room: its change numbers, in the order read, a page of 40 at a time. */
  async function feedSeqs(roomId: string): Promise<{ changeSeq: number; event: string }[]> {
    const changes = createRoomChangesRepository(db.sql);
    const seen: { changeSeq: number; event: string }[] = [];
    for (;;) {
      const page = await changes.page(roomId, seen.at(-1)?.changeSeq ?? 0, 40);
      seen.push(...page.map((row) => ({ changeSeq: row.changeSeq, event: row.event })));
      if (page.length < 40) return seen;
    }
  }

  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);

  it('history, cursors, the feed, deletes, retries and seq across an extend and while the job moves the old day', { timeout: 60_000 }, async () => {
    const messages = createMessagesRepository(db.sql);
    const lifetime = createRoomLifetimeRepository(db.sql);
    const partitions = createMessagePartitionsRepository(db.sql);
    const day = await dayFromToday(sql, 1);
    const laterDay = await dayFromToday(sql, 2);
    const roomId = await makeRoom(new Date(`${day}T06:00:00.000Z`), 250);

    // Extended into the next day; the room's next messages are stored there.
    const extended = await lifetime.setExpiry(roomId, new Date(`${laterDay}T06:00:00.000Z`));
    expect(extended).toMatchObject({ status: 'changed', changeSeq: 251 });
    const sent = await messages.insertBatch([message(roomId, 'after-1'), message(roomId, 'after-2'), message(roomId, null)]);
    expect(sent.map((outcome) => (outcome.status === 'stored' ? outcome.message.seq : outcome.status))).toEqual([251, 252, 253]);
    expect(await messagePlacement(sql, roomId)).toEqual({ [partitionOf(day)]: 250, [partitionOf(laterDay)]: 3 });

    // A retry of a message from before the extend, and one from after: the originals.
    const retried = await messages.insertBatch([message(roomId, `${roomId}-7`), message(roomId, 'after-1')]);
    expect(retried.map((outcome) => outcome.status)).toEqual(['duplicate', 'duplicate']);
    expect(retried.map((outcome) => (outcome.status === 'duplicate' ? outcome.message.seq : 0))).toEqual([7, 251]);

    // Deleting one message of each day.
    const [old] = await sql<{ id: string }[]>`select id from messages where room_id = ${roomId} and seq = 100`;
    expect((await messages.find(old!.id))?.roomExpiresAt.toISOString()).toBe(`${laterDay}T06:00:00.000Z`);
    expect(await messages.softDelete(old!.id, user)).toEqual({ roomId, changeSeq: 255 });
    const newId = sent[0]!.status === 'stored' ? sent[0]!.message.id : '';
    expect(await messages.softDelete(newId, user)).toEqual({ roomId, changeSeq: 256 });

    const live = range(1, 253).filter((seq) => seq !== 100 && seq !== 251).reverse();
    const changes = [...range(1, 250), 251, 252, 253, 254, 255, 256];
    const deletes = [255, 256];
    const expectReadable = async () => {
      // Pages of 20 across both days, each message once, by seq.
      expect(await historySeqs(roomId, 20)).toEqual(live);
      // Cursors on either side of the boundary, and between them.
      const idOf = async (seq: number) => (await sql<{ id: string }[]>`select id from messages where room_id = ${roomId} and seq = ${seq}`)[0]!.id;
      const after = await messages.page(roomId, { afterId: await idOf(238), beforeId: null, order: 'oldest', limit: 11 });
      expect(after.rows.map((row) => row.seq)).toEqual(live.filter((seq) => seq > 238).reverse().slice(0, 11));
      const between = await messages.page(roomId, { afterId: await idOf(235), beforeId: await idOf(253), order: 'newest', limit: 21 });
      expect(between.rows.map((row) => row.seq)).toEqual(live.filter((seq) => seq > 235 && seq < 253));
      // The feed: every change once, in order (the message seq 251's change numbers 252, …).
      const feed = await feedSeqs(roomId);
      expect(feed.map((row) => row.changeSeq)).toEqual(changes);
      expect(feed.filter((row) => row.event === 'message-deleted').map((row) => row.changeSeq)).toEqual(deletes);
      expect(await createRoomChangesRepository(db.sql).unreadableThrough(roomId, 200)).toBeNull();
    };
    await expectReadable();

    // The job's move, a batch at a time: after each, everything reads the same.
    let remaining = 1;
    let batches = 0;
    while (remaining > 0) {
      const batch = await partitions.relocateBatch(roomId, 60);
      remaining = batch.remaining;
      batches += 1;
      await expectReadable();
      if (batches === 2) {
        // Half moved: a send, a retry of a moved message and of one not yet moved, a delete.
        expect(await messagePlacement(sql, roomId)).toEqual({ [partitionOf(day)]: 130, [partitionOf(laterDay)]: 123 });
        const during = await messages.insertBatch([message(roomId, 'during'), message(roomId, `${roomId}-3`), message(roomId, `${roomId}-200`)]);
        expect(during.map((outcome) => outcome.status)).toEqual(['stored', 'duplicate', 'duplicate']);
        expect(during[0]).toMatchObject({ message: { seq: 254, changeSeq: 257 } });
        const [notMoved] = await sql<{ id: string }[]>`select id from messages where room_id = ${roomId} and seq = 240`;
        expect(await messages.softDelete(notMoved!.id, user)).toEqual({ roomId, changeSeq: 258 });
        live.unshift(254);
        live.splice(live.indexOf(240), 1);
        changes.push(257, 258);
        deletes.push(258);
        await expectReadable();
      }
    }
    expect(batches).toBe(5);
    expect(await messagePlacement(sql, roomId)).toEqual({ [partitionOf(laterDay)]: 254 });
    expect(await earlier(roomId)).toBe(0);
    const seqs = await sql<{ seq: number }[]>`select seq::int as seq from messages where room_id = ${roomId} order by seq`;
    expect(seqs.map((row) => row.seq)).toEqual(range(1, 254));
  });

  it('the job does not drop a day a live room still lists, moves its messages out, then drops it', { timeout: 60_000 }, async () => {
    const partitions = createMessagePartitionsRepository(db.sql);
    const messages = createMessagesRepository(db.sql);
    // A day that is over, with its partition (made by hand: the job never makes a past day).
    const yesterday = await dayFromToday(sql, -1);
    await partitions.ensure(yesterday);
    const oldExpiry = new Date(`${yesterday}T23:00:00.000Z`);
    const roomId = await makeRoom(oldExpiry, 120);
    // Extended before that expiry (as setExpiry leaves it): live now, its messages still in yesterday.
    await sql`update rooms set expires_at = now() + interval '1 day', earlier_expiries = array[${oldExpiry}::timestamptz] where id = ${roomId}`;

    expect(await partitions.dropIfExpired(yesterday, 0)).toEqual({ status: 'rooms-pending' });
    // A run with no time to move anything keeps the day and everything in it readable.
    const idle = await runPartitionMaintenance({ partitions, logger, relocateBudgetMs: 0, relocateBatchRows: 50 });
    expect(idle).toMatchObject({ failed: [], relocating: true, rowsRelocated: 50 });
    expect(idle.dropped).not.toContain(yesterday);
    expect(idle.waiting).toContain(yesterday);
    expect((await messages.page(roomId, { afterId: null, beforeId: null, order: 'oldest', limit: 101 })).rows.map((row) => row.seq)).toEqual(range(1, 101));

    const run = await runPartitionMaintenance({ partitions, logger, relocateBatchRows: 50 });
    expect(run).toMatchObject({ failed: [], relocating: false, rowsRelocated: 70 });
    expect(run.dropped).toContain(yesterday);
    expect(await earlier(roomId)).toBe(0);
    const [room] = await sql<{ day: string }[]>`select to_char(expires_at at time zone 'UTC', 'YYYY-MM-DD') as day from rooms where id = ${roomId}`;
    expect(await messagePlacement(sql, roomId)).toEqual({ [partitionOf(room!.day)]: 120 });
    expect((await messages.page(roomId, { afterId: null, beforeId: null, order: 'newest', limit: 101 })).rows).toHaveLength(101);
  });

  it('a closed room’s messages are deleted by the job in batches, its old day then free to go', { timeout: 60_000 }, async () => {
    const partitions = createMessagePartitionsRepository(db.sql);
    const lifetime = createRoomLifetimeRepository(db.sql);
    const day = await dayFromToday(sql, 2);
    const roomId = await makeRoom(new Date(`${day}T08:00:00.000Z`), 130);
    const other = await makeRoom(new Date(`${day}T09:00:00.000Z`), 10);
    expect(await lifetime.setExpiry(roomId, 'now')).toMatchObject({ status: 'changed' });
    // The close moved nothing; the job deletes what the room held, and nothing of another room.
    expect(await messagePlacement(sql, roomId)).toEqual({ [partitionOf(day)]: 130 });
    const run = await runPartitionMaintenance({ partitions, logger, relocateBatchRows: 50 });
    expect(run).toMatchObject({ failed: [], rowsDeleted: 130, relocating: false });
    expect(await messagePlacement(sql, roomId)).toEqual({});
    expect(await earlier(roomId)).toBe(0);
    expect(await messagePlacement(sql, other)).toEqual({ [partitionOf(day)]: 10 });
  });
});

describe('the history page statement on a room listing an earlier expiry', () => {
  let database: TestDatabase;
  let db: Database;
  let sql: Sql;

  beforeAll(async () => {
    database = await createTestDatabase();
    // One connection: the prepared statement explained is on the session that ran it.
    db = createDatabase({ url: database.url, maxConnections: 1 });
    sql = postgres(database.url, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await sql?.end({ timeout: 5 });
    await db?.close();
    await database?.drop();
  });

  /** The partitions of `messages` a run of the plan executed (an index scan with loops > 0). */
  function partitionsRead(plan: unknown): string[] {
    const read = new Set<string>();
    const walk = (node: Record<string, unknown>) => {
      const relation = node['Relation Name'];
      if (typeof relation === 'string' && relation.startsWith('messages_') && Number(node['Actual Loops'] ?? 0) > 0) read.add(relation);
      for (const child of (node['Plans'] as Record<string, unknown>[] | undefined) ?? []) walk(child);
    };
    walk(plan as Record<string, unknown>);
    return [...read].sort();
  }

  it('its generic plan reads only the partitions of the room’s expiries, pruned as it runs', { timeout: 60_000 }, async () => {
    const user = await seedUser(sql, '계획');
    const days = await Promise.all([1, 2, 3, 4].map((offset) => dayFromToday(sql, offset)));
    const partitions = createMessagePartitionsRepository(db.sql);
    for (const day of days) await partitions.ensure(day);
    const [first, second] = [new Date(`${days[0]}T10:00:00.000Z`), new Date(`${days[2]}T10:00:00.000Z`)];
    const roomId = randomUUID();
    await sql`insert into rooms (id, name, created_by, created_at, expires_at, earlier_expiries, last_seq)
              values (${roomId}, 'p', ${user}, now(), ${second}, array[${first}::timestamptz], 200)`;
    await sql`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
              select gen_random_uuid(), ${roomId}, ${user}, 'text', 'x', g, now(), case when g <= 100 then ${first}::timestamptz else ${second}::timestamptz end
              from generate_series(1, 200) g`;
    // Other rooms in every day, as in service.
    for (const day of days) {
      await sql`insert into rooms (id, name, created_by, created_at, expires_at) values (${randomUUID()}, 'o', ${user}, now(), ${`${day}T12:00:00.000Z`})`;
    }
    await sql`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
              select gen_random_uuid(), r.id, ${user}, 'text', 'o', g, now(), r.expires_at from rooms r, generate_series(1, 50) g where r.name = 'o'`;
    await sql`analyze messages`;

    const messages = createMessagesRepository(db.sql);
    const page = await messages.page(roomId, { afterId: null, beforeId: null, order: 'newest', limit: 110 });
    expect(page.rows.map((row) => row.seq)).toEqual(Array.from({ length: 110 }, (_, k) => 200 - k));

    const [statement] = await db.sql<{ name: string; parameter_types: string[] }[]>`
      select name, parameter_types::text[] from pg_prepared_statements
      where statement like '%from messages m join users u%' and statement like '%order by m.seq desc%'
        and statement not like '%before_seq%' and statement not like '%pg_prepared_statements%'`;
    expect(statement).toBeDefined();
    const args = statement!.parameter_types.map(() => `'${roomId}'`).join(', ');
    await db.sql`set plan_cache_mode = force_generic_plan`;
    const [explained] = await db.sql<{ 'QUERY PLAN': unknown[] }[]>`
      ${db.sql.unsafe(`explain (analyze, costs off, format json) execute "${statement!.name}"(${args})`)}`;
    await db.sql`reset plan_cache_mode`;
    const plan = (explained!['QUERY PLAN'][0] as { Plan: unknown }).Plan;
    // Every day's partition (and messages_default) is in the generic plan; only the room's two ran.
    expect(JSON.stringify(plan)).toContain(partitionOf(days[3]!));
    expect(partitionsRead(plan)).toEqual([partitionOf(days[0]!), partitionOf(days[2]!)]);
  });
});

describe('an extend of a room of 300,000 messages', () => {
  let database: TestDatabase;
  let db: Database;
  let sql: Sql;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ url: database.url, maxConnections: 2 });
    sql = postgres(database.url, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await sql?.end({ timeout: 5 });
    await db?.close();
    await database?.drop();
  });

  it('moves none of them: the call writes the room’s row and its feed entry, whatever the room holds', { timeout: 120_000 }, async () => {
    const user = await seedUser(sql, '큰방');
    const tomorrow = await dayFromToday(sql, 1);
    const roomId = randomUUID();
    await sql`insert into rooms (id, name, created_by, created_at, expires_at, last_seq, last_change_seq)
              values (${roomId}, 'big', ${user}, now(), ${`${tomorrow}T12:00:00.000Z`}, 300000, 300000)`;
    await sql`insert into messages (id, room_id, user_id, type, content, seq, change_seq, created_at, expires_at)
              select gen_random_uuid(), r.id, ${user}, 'text', 'm ' || g, g, g, now(), r.expires_at
              from rooms r, generate_series(1, 300000) g where r.id = ${roomId}`;

    // Until 0013 this rewrote all 300,000 rows' partition key in one statement, the room locked
    // throughout (~2 s here; cancelled at 5 s from about 1,000,000). Now it writes the room's
    // row and its feed entry: every message is where it was, listed under the old expiry.
    const extended = await createRoomLifetimeRepository(db.sql).setExpiry(roomId, new Date(Date.now() + 2 * DAY_MS));
    expect(extended).toMatchObject({ status: 'changed', changeSeq: 300_001 });
    expect(await messagePlacement(sql, roomId)).toEqual({ [partitionOf(tomorrow)]: 300_000 });
    expect(await sql`select cardinality(earlier_expiries)::int as n from rooms where id = ${roomId}`).toEqual([{ n: 1 }]);
    // And still readable, newest first, from the old day.
    const newest = await createMessagesRepository(db.sql).page(roomId, { afterId: null, beforeId: null, order: 'newest', limit: 3 });
    expect(newest.rows.map((row) => row.seq)).toEqual([300_000, 299_999, 299_998]);
  });
});

describe('migration 0013 on a database with rooms and messages', () => {
  let old: TestDatabase;
  let db: Database;
  afterAll(async () => {
    await db?.close();
    await old?.drop();
  });

  it('lists no earlier expiry for any room, and history reads what was there', { timeout: 60_000 }, async () => {
    old = await createTestDatabaseUpTo(13);
    db = createDatabase({ url: old.url, maxConnections: 1 });
    const { sql } = db;
    const user = randomUUID();
    const roomId = randomUUID();
    await sql`insert into users (id, nickname) values (${user}, '이전')`;
    await sql`insert into rooms (id, name, created_by, created_at, expires_at, last_seq)
              values (${roomId}, 'before 0013', ${user}, now(), now() + interval '1 hour', 30)`;
    await sql`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
              select gen_random_uuid(), r.id, ${user}, 'text', 'x', g, now(), r.expires_at from rooms r, generate_series(1, 30) g where r.id = ${roomId}`;

    await runMigrations(old.url);

    expect(await sql`select earlier_expiries::text as e from rooms`).toEqual([{ e: '{}' }]);
    const page = await createMessagesRepository(sql).page(roomId, { afterId: null, beforeId: null, order: 'newest', limit: 51 });
    expect(page.rows.map((row) => row.seq)).toEqual(Array.from({ length: 30 }, (_, k) => 30 - k));
    // An extend now lists the old expiry and leaves the messages where they are.
    expect(await createRoomLifetimeRepository(sql).setExpiry(roomId, new Date(Date.now() + DAY_MS))).toMatchObject({ status: 'changed' });
    expect(await sql`select cardinality(earlier_expiries)::int as n from rooms`).toEqual([{ n: 1 }]);
  });
});
