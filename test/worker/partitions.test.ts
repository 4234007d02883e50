import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { busChannelPrefix, createShardedEmitter } from '@chat/bus';
import { Redis } from 'ioredis';
import pino from 'pino';
import postgres, { type Sql, type TransactionSql } from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  createDatabase,
  createMessagePartitionsRepository,
  createMessagesRepository,
  createRoomExpiryRepository,
  runMigrations,
  type Database,
} from '@chat/db';
import { CHAT_NAMESPACE, type ServerToClientEvents } from '@chat/protocol';
import { runPartitionMaintenance, runRoomSweep } from '@chat/worker';
import { createTestDatabase, createTestDatabaseUpTo, uniquePrefix, type TestDatabase } from '@chat/testing';
import { closeAllWorkers, startTestWorker, workerServices } from '../support/index.ts';

import { DAY_MS, dayFromToday, messagePlacement, newMessage, partitionOf, seedUser } from '../support/partitions.ts';

/**
 * Issue 17 §3: `messages` partitioned by expiry day (migration 0002, docs/partitions.md), on
 * real Postgres. Every database here is this file's own: the partition job drops days of the
 * whole database.
 */

const logger = pino({ level: 'silent' });
async function partitionNames(sql: Sql): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'messages'::regclass order by 1`;
  return rows.map((row) => row.name);
}

/** A room expiring at `expiresAt`, with `count` messages (every tenth soft-deleted) and one member. */
async function makeRoom(sql: Sql, userId: string, expiresAt: Date, count: number): Promise<string> {
  const id = randomUUID();
  await sql.begin(async (tx) => {
    await tx`insert into rooms (id, name, created_by, created_at, expires_at, last_seq, member_count)
             values (${id}, 'p', ${userId}, ${new Date(expiresAt.getTime() - DAY_MS)}, ${expiresAt}, ${count}, 1)`;
    await tx`insert into room_members (room_id, user_id) values (${id}, ${userId})`;
    await tx`insert into messages (id, room_id, user_id, type, content, client_message_id, seq, created_at, expires_at, is_deleted)
             select gen_random_uuid(), ${id}, ${userId}, 'text', 'm ' || g, ${id}::text || '-' || g, g, now(), ${expiresAt}, g % 10 = 0
             from generate_series(1, ${count}::int) g`;
  });
  return id;
}

describe('migration 0002 on a database that already has messages', () => {
  let old: TestDatabase;
  let sql: Sql;
  afterAll(async () => {
    await sql?.end({ timeout: 5 });
    await old?.drop();
  });

  it('keeps every row, puts each room in its expiry day, and keeps the keys', { timeout: 60_000 }, async () => {
    old = await createTestDatabaseUpTo(2);
    sql = postgres(old.url, { max: 2, onnotice: () => {} });
    expect((await sql`select relkind from pg_class where relname = 'messages'`)[0]?.relkind).toBe('r');
    const user = await seedUser(sql, '파티션');
    const now = Date.now();
    const expiredRoom = await makeRoom(sql, user, new Date(now - 2 * DAY_MS), 300);
    const liveRoom = await makeRoom(sql, user, new Date(now + DAY_MS), 500);
    const fingerprint = async () =>
      (await sql<{ n: number; digest: string }[]>`
        select count(*)::int as n,
               md5(string_agg(concat_ws('|', id, room_id, user_id, type, content, image_url, client_message_id,
                                        seq, created_at, expires_at, is_deleted), ',' order by id)) as digest
        from messages`)[0]!;
    const before = await fingerprint();
    expect(before.n).toBe(800);

    await runMigrations(old.url);

    expect((await sql`select relkind from pg_class where relname = 'messages'`)[0]?.relkind).toBe('p');
    expect(await fingerprint()).toEqual(before);
    const expiredDay = new Date(now - 2 * DAY_MS).toISOString().slice(0, 10);
    const liveDay = new Date(now + DAY_MS).toISOString().slice(0, 10);
    expect(await messagePlacement(sql, expiredRoom)).toEqual({ [partitionOf(expiredDay)]: 300 });
    expect(await messagePlacement(sql, liveRoom)).toEqual({ [partitionOf(liveDay)]: 500 });
    const names = await partitionNames(sql);
    for (const offset of [0, 1, 2]) expect(names).toContain(partitionOf(await dayFromToday(sql, offset)));
    expect(names).toContain('messages_default');
    expect(await sql`select to_regclass('messages_unpartitioned') as t`).toEqual([{ t: null }]);

    // The keys hold on the moved rows: a second seq 1 in the room, or the same retry key.
    const [first] = await sql<{ client_message_id: string }[]>`
      select client_message_id from messages where room_id = ${liveRoom} and seq = 1`;
    const insertCopy = (changes: { seq?: number; clientMessageId?: string | null }) => sql`
      insert into messages (id, room_id, user_id, type, content, client_message_id, seq, created_at, expires_at)
      select gen_random_uuid(), room_id, user_id, type, content, ${changes.clientMessageId ?? null}, ${changes.seq ?? 10_000}, created_at, expires_at
      from messages where room_id = ${liveRoom} and seq = 1`;
    await expect(insertCopy({ seq: 1 })).rejects.toMatchObject({ code: '23505', constraint_name: expect.stringContaining('room_id_seq') });
    await expect(insertCopy({ clientMessageId: first!.client_message_id })).rejects.toMatchObject({
      code: '23505',
      constraint_name: expect.stringContaining('client_message_id'),
    });
    // Migration 0005 then dropped messages' foreign keys, on the moved rows' partitions too: a
    // message's expires_at is held to its room's by the statements that write either
    // (test/storage/batch-statement.test.ts, the server API's lifetime test, the worker's).
    const fks = await sql<{ conname: string }[]>`select conname from pg_constraint where conrelid = 'messages'::regclass and contype = 'f'`;
    expect(fks).toEqual([]);
  });
});

describe('day partitions without a live room', () => {
  let database: TestDatabase;
  let db: Database;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ url: database.url, maxConnections: 2 });
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  // A new or idle cluster: no room expires on a later day, so only the look-ahead is wanted
  // (the maximum expiry was null, which least() skipped: 41 partitions, one per day of 40).
  it('the job keeps today .. today + 2 and creates nothing more', async () => {
    const partitions = createMessagePartitionsRepository(db.sql);
    const expected = await Promise.all([0, 1, 2].map((offset) => dayFromToday(db.sql, offset)));
    expect(await partitions.wantedDays(2, 40)).toEqual(expected);
    const run = await runPartitionMaintenance({ partitions, logger });
    expect(run.created).toEqual([]);
    expect(await partitionNames(db.sql)).toEqual(['messages_default', ...expected.map(partitionOf)].sort());
  });
});

describe('day partitions', () => {
  let database: TestDatabase;
  let db: Database;
  let sql: Sql;
  let redis: Redis;
  let user: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ url: database.url, maxConnections: 4 });
    sql = postgres(database.url, { max: 2, onnotice: () => {} });
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
    user = await seedUser(sql, '파티션');
  });
  afterAll(async () => {
    await closeAllWorkers();
    redis?.disconnect();
    await sql?.end({ timeout: 5 });
    await db?.close();
    await database?.drop();
  });

  const message = (roomId: string, clientMessageId: string | null) => newMessage(roomId, user, clientMessageId);

  it('the batch insert lands in the room’s day; retries dedupe and seq stays gap-free across days', async () => {
    const messages = createMessagesRepository(db.sql);
    const soonAt = new Date(Date.now() + 3_600_000);
    const laterAt = new Date(Date.now() + 2 * DAY_MS);
    const soon = await makeRoom(sql, user, soonAt, 0);
    const later = await makeRoom(sql, user, laterAt, 0);
    const key = `retry-${randomUUID()}`;
    const first = await messages.insertBatch([message(soon, key), message(later, null), message(soon, null), message(later, null)]);
    expect(first.map((outcome) => outcome.status)).toEqual(['stored', 'stored', 'stored', 'stored']);
    expect(first.map((outcome) => (outcome.status === 'stored' ? outcome.message.seq : 0))).toEqual([1, 1, 2, 2]);

    // A retry in the same room, one in another room (another day), and repeats within a batch.
    const again = await messages.insertBatch([message(soon, key), message(later, key), message(soon, 'new'), message(soon, 'new')]);
    expect(again.map((outcome) => outcome.status)).toEqual(['duplicate', 'duplicate', 'stored', 'duplicate']);
    const original = first[0]!.status === 'stored' ? first[0]!.message.id : '';
    expect(again.slice(0, 2).map((outcome) => (outcome.status === 'duplicate' ? outcome.message.id : ''))).toEqual([original, original]);
    expect(again[2]).toMatchObject({ status: 'stored', message: { seq: 3 } });

    const soonDay = soonAt.toISOString().slice(0, 10);
    const laterDay = laterAt.toISOString().slice(0, 10);
    expect(await messagePlacement(sql, soon)).toEqual({ [partitionOf(soonDay)]: 3 });
    expect(await messagePlacement(sql, later)).toEqual({ [partitionOf(laterDay)]: 2 });
    const seqs = await sql<{ seq: number }[]>`select seq::int as seq from messages where room_id = ${soon} order by seq`;
    expect(seqs.map((row) => row.seq)).toEqual([1, 2, 3]);
    // History reads the room's day only and sees every live message.
    const page = await messages.page(soon, { afterId: null, beforeId: null, order: 'newest', limit: 10 });
    expect(page.rows.map((row) => row.seq)).toEqual([3, 2, 1]);
  });

  it('a day without a partition takes its rows into messages_default; the job moves them into a new partition', async () => {
    const partitions = createMessagePartitionsRepository(db.sql);
    // Farther than the job ever looks ahead by itself (40 days), so no partition waits for it.
    const farDay = await dayFromToday(sql, 45);
    const far = await makeRoom(sql, user, new Date(`${farDay}T12:00:00.000Z`), 0);
    const messages = createMessagesRepository(db.sql);
    const stored = await messages.insertBatch([message(far, null), message(far, null)]);
    expect(stored.map((outcome) => outcome.status)).toEqual(['stored', 'stored']);
    expect(await messagePlacement(sql, far)).toEqual({ messages_default: 2 });

    const result = await runPartitionMaintenance({ partitions, logger });
    expect(result.created).toContain(farDay);
    expect(await messagePlacement(sql, far)).toEqual({ [partitionOf(farDay)]: 2 });
    expect(await sql`select count(*)::int as n from messages_default`).toEqual([{ n: 0 }]);
    // Idempotent: a second run changes nothing.
    expect(await runPartitionMaintenance({ partitions, logger })).toMatchObject({ created: [], dropped: [] });
  });

  it('the job creates days ahead, at worker start too, and drops a day only once it is over and swept', { timeout: 30_000 }, async () => {
    const partitions = createMessagePartitionsRepository(db.sql);
    const expiry = createRoomExpiryRepository(db.sql);
    const today = await dayFromToday(sql, 0);
    const inTwoDays = await dayFromToday(sql, 2);
    const inFiveDays = await dayFromToday(sql, 5);
    const yesterday = await dayFromToday(sql, -1);
    const twoDaysAgo = await dayFromToday(sql, -2);

    // A live room expiring in five days: its day must exist before its first message.
    await sql.unsafe(`drop table if exists ${partitionOf(inFiveDays)}`);
    await makeRoom(sql, user, new Date(`${inFiveDays}T06:00:00.000Z`), 0);
    // Two rooms that expired on past days, with their messages and members still there.
    for (const day of [yesterday, twoDaysAgo]) await partitions.ensure(day);
    const swept = await makeRoom(sql, user, new Date(`${twoDaysAgo}T10:00:00.000Z`), 1000);
    const unswept = await makeRoom(sql, user, new Date(`${yesterday}T10:00:00.000Z`), 1000);
    await sql`update rooms set expired_at = now(), member_count = 0 where id = ${swept}`;
    await sql`delete from room_members where room_id = ${swept}`;
    // A live room of today keeps today's partition, messages included.
    const todays = await makeRoom(sql, user, new Date(Math.max(Date.now() + 60_000, Date.parse(`${today}T23:59:00.000Z`))), 10);

    const first = await runPartitionMaintenance({ partitions, logger });
    expect(first.created).toContain(inFiveDays);
    expect(first.dropped).toEqual([twoDaysAgo]);
    expect(first.waiting).toEqual([yesterday]); // its room is not marked expired yet
    expect(first.rowsDropped).toBeGreaterThanOrEqual(0);
    let names = await partitionNames(sql);
    expect(names).not.toContain(partitionOf(twoDaysAgo));
    expect(names).toContain(partitionOf(yesterday));
    expect(names).toContain(partitionOf(today));
    for (let offset = 0; offset <= 5; offset++) expect(names).toContain(partitionOf(await dayFromToday(sql, offset)));
    expect(await sql`select count(*)::int as n from messages where room_id = ${swept}`).toEqual([{ n: 0 }]);
    expect(await sql`select count(*)::int as n from messages where room_id = ${unswept}`).toEqual([{ n: 1000 }]);
    expect(await sql`select count(*)::int as n from messages where room_id = ${todays}`).toEqual([{ n: 10 }]);

    // The sweep marks the overdue room: announced, memberships purged, and no message deleted.
    const sweep = await runRoomSweep({
      expiry,
      emitter: createShardedEmitter<ServerToClientEvents>(redis, { channelPrefix: busChannelPrefix(uniquePrefix('part')), nsp: CHAT_NAMESPACE }),
      logger,
      expiringNoticeMs: 0,
      tombstoneTtlMs: 7 * DAY_MS,
      batchSize: 100,
    });
    expect(sweep.expired).toBe(1);
    expect(sweep.membersPurged).toBe(1);
    expect(await sql`select count(*)::int as n from messages where room_id = ${unswept}`).toEqual([{ n: 1000 }]);
    expect(await sql`select count(*)::int as n from room_members where room_id = ${unswept}`).toEqual([{ n: 0 }]);
    expect((await sql`select expired_at from rooms where id = ${unswept}`)[0]?.expired_at).not.toBeNull();

    // Now yesterday goes too; today and the live room's day stay.
    const second = await runPartitionMaintenance({ partitions, logger });
    expect(second).toMatchObject({ created: [], dropped: [yesterday], waiting: [] });
    names = await partitionNames(sql);
    expect(names).not.toContain(partitionOf(yesterday));
    expect(names).toContain(partitionOf(today));
    expect(names).toContain(partitionOf(inFiveDays));
    expect(await sql`select count(*)::int as n from messages where room_id = ${todays}`).toEqual([{ n: 10 }]);
    expect(await partitions.dropIfExpired(today, 0)).toEqual({ status: 'not-due' });
    expect(await partitions.dropIfExpired(twoDaysAgo, 0)).toEqual({ status: 'missing' });

    // A worker runs the job as it starts: a day missing ahead is there once startWorker returns.
    await sql.unsafe(`drop table ${partitionOf(inTwoDays)}`);
    const worker = await startTestWorker(
      workerServices(database.url, 'partw'),
      { ROOM_EXPIRING_NOTICE_SECONDS: '0' },
    );
    try {
      expect(await partitionNames(sql)).toContain(partitionOf(inTwoDays));
    } finally {
      await worker.close();
    }
  });
});

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(work: PromiseLike<T>): Promise<Settled<T>> =>
  Promise.resolve(work).then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

describe('partition DDL next to a send in flight', () => {
  let database: TestDatabase;
  let sql: Sql;
  let user: string;
  let room: string;
  /** The send: one connection, one transaction at a time. */
  let send: Sql;

  beforeAll(async () => {
    database = await createTestDatabase();
    sql = postgres(database.url, { max: 2, onnotice: () => {} });
    send = postgres(database.url, { max: 1, onnotice: () => {} });
    user = await seedUser(sql, '파티션');
    room = await makeRoom(sql, user, new Date(Date.now() + 3_600_000), 1);
  });
  afterAll(async () => {
    await send?.end({ timeout: 5 });
    await sql?.end({ timeout: 5 });
    await database?.drop();
  });

  /**
   * The partition job's connection (a name of its own, to find its backend in pg_stat_activity),
   * with the worker's lock_timeout: a wait that never ends fails instead of hanging the test.
   */
  function jobConnection(): { sql: Sql; name: string } {
    const name = `partition-job-${randomBytes(3).toString('hex')}`;
    return { name, sql: postgres(database.url, { max: 1, onnotice: () => {}, connection: { application_name: name, lock_timeout: 10_000 } }) };
  }

  /** Bounded poll (200 × 25 ms) until the backend named `name` waits for a table lock. */
  async function untilWaitingOnTableLock(name: string, job: { settled: boolean }): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      const rows = await sql`
        select 1 from pg_stat_activity
        where application_name = ${name} and wait_event_type = 'Lock' and wait_event = 'relation'`;
      if (rows.length > 0) return;
      if (job.settled) throw new Error(`${name} finished without waiting for a lock`);
      await delay(25);
    }
    throw new Error(`${name} never waited for a table lock`);
  }

  /**
   * A send's transaction takes `before`; the partition job then runs `ddl` on its own connection
   * and must queue for a lock; the send goes on with `after` and commits. Both must succeed:
   * with the locks taken in opposite orders one of them is killed as a deadlock (40P01).
   */
  async function sendAlongside<T>(
    before: (tx: TransactionSql) => Promise<unknown>,
    ddl: (job: Sql) => PromiseLike<T>,
    after: (tx: TransactionSql) => Promise<unknown>,
  ): Promise<{ send: Settled<unknown>; job: Settled<T> }> {
    const connection = jobConnection();
    const state: { settled: boolean; job?: Promise<Settled<T>> } = { settled: false };
    try {
      const sent = await settle(
        send.begin(async (tx) => {
          await before(tx);
          state.job = settle(ddl(connection.sql)).finally(() => {
            state.settled = true;
          });
          await untilWaitingOnTableLock(connection.name, state);
          await after(tx);
        }),
      );
      if (!state.job) throw new Error('the job never started');
      return { send: sent, job: await state.job };
    } finally {
      await state.job;
      await connection.sql.end({ timeout: 5 });
    }
  }

  // What the group-commit statement does, in its order: lock the room rows, advance last_seq
  // (ROW EXCLUSIVE on rooms), look the batch's clientMessageIds up in every partition.
  const lockRoom = (tx: TransactionSql) => tx`select id from rooms where id = ${room} for update`;
  const advanceRoom = (tx: TransactionSql) => tx`update rooms set last_seq = last_seq where id = ${room}`;
  const readEveryPartition = (tx: TransactionSql) => tx`select count(*) from messages where client_message_id = 'none'`;

  it('creating a day waits for a send that holds its room, instead of deadlocking with it', { timeout: 30_000 }, async () => {
    const day = await dayFromToday(sql, 50);
    const result = await sendAlongside(
      async (tx) => {
        await lockRoom(tx);
        await advanceRoom(tx);
      },
      (job) => createMessagePartitionsRepository(job).ensure(day),
      readEveryPartition,
    );
    expect(result).toEqual({ send: { ok: true, value: undefined }, job: { ok: true, value: true } });
    expect(await partitionNames(sql)).toContain(partitionOf(day));
  });

  it('creating a day waits for a send that has locked its room and read messages, then updates the room', { timeout: 30_000 }, async () => {
    // The room lock taken first must also stop a transaction that holds only the row lock (ROW
    // SHARE) so far: SHARE ROW EXCLUSIVE would let the job in, to wait on messages_default
    // behind the read while the send's update waits on the job.
    const day = await dayFromToday(sql, 51);
    const result = await sendAlongside(
      async (tx) => {
        await lockRoom(tx);
        await readEveryPartition(tx);
      },
      (job) => createMessagePartitionsRepository(job).ensure(day),
      advanceRoom,
    );
    expect(result).toEqual({ send: { ok: true, value: undefined }, job: { ok: true, value: true } });
    expect(await partitionNames(sql)).toContain(partitionOf(day));
  });

  /** A move out of messages_default under way, its bulk copy done: what is left is its locked end. */
  async function moveCopied(dayOffset: number): Promise<string> {
    const day = await dayFromToday(sql, dayOffset);
    await makeRoom(sql, user, new Date(`${day}T12:00:00.000Z`), 5);
    const partitions = createMessagePartitionsRepository(sql);
    expect(await partitions.beginMove()).toBe(true);
    while ((await partitions.copyBatch(100)) > 0);
    return day;
  }

  it('ending a move out of messages_default waits for a send that holds its room, instead of deadlocking with it', { timeout: 30_000 }, async () => {
    const day = await moveCopied(60);
    const result = await sendAlongside(
      async (tx) => {
        await lockRoom(tx);
        await advanceRoom(tx);
      },
      (job) => createMessagePartitionsRepository(job).finishMove(),
      readEveryPartition,
    );
    expect(result).toEqual({ send: { ok: true, value: undefined }, job: { ok: true, value: [day] } });
    expect(await partitionNames(sql)).toContain(partitionOf(day));
  });

  it('ending a move waits for a send that has locked its room and read messages, then updates the room', { timeout: 30_000 }, async () => {
    const day = await moveCopied(61);
    const result = await sendAlongside(
      async (tx) => {
        await lockRoom(tx);
        await readEveryPartition(tx);
      },
      (job) => createMessagePartitionsRepository(job).finishMove(),
      advanceRoom,
    );
    expect(result).toEqual({ send: { ok: true, value: undefined }, job: { ok: true, value: [day] } });
    expect(await partitionNames(sql)).toContain(partitionOf(day));
  });

  it('starting a move waits for a send that has written messages_default, which then updates its room', { timeout: 30_000 }, async () => {
    // The log's trigger is turned on under SHARE ROW EXCLUSIVE on messages_default: it waits
    // for the writers in flight, holding nothing on rooms.
    const day = await dayFromToday(sql, 62);
    const far = await makeRoom(sql, user, new Date(`${day}T12:00:00.000Z`), 1);
    const result = await sendAlongside(
      async (tx) => {
        await tx`select id from rooms where id = ${far} for update`;
        await tx`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
                 select gen_random_uuid(), id, ${user}, 'text', 'x', last_seq + 1, now(), expires_at from rooms where id = ${far}`;
      },
      (job) => createMessagePartitionsRepository(job).beginMove(),
      (tx) => tx`update rooms set last_seq = last_seq + 1 where id = ${far}`,
    );
    expect(result).toEqual({ send: { ok: true, value: undefined }, job: { ok: true, value: true } });
    const partitions = createMessagePartitionsRepository(sql);
    while ((await partitions.copyBatch(100)) > 0);
    expect(await partitions.finishMove()).toEqual([day]);
    expect(await sql`select count(*)::int as n from messages where room_id = ${far} and tableoid = ${partitionOf(day)}::regclass`).toEqual([{ n: 2 }]);
  });

  it('dropping a day waits for a send that holds its room and reads messages, instead of deadlocking with it', { timeout: 30_000 }, async () => {
    const day = await dayFromToday(sql, -3);
    await createMessagePartitionsRepository(sql).ensure(day);
    const gone = await makeRoom(sql, user, new Date(`${day}T10:00:00.000Z`), 5);
    await sql`update rooms set expired_at = now(), member_count = 0 where id = ${gone}`;
    const result = await sendAlongside(
      async (tx) => {
        await lockRoom(tx);
        await advanceRoom(tx);
        await readEveryPartition(tx);
      },
      (job) => createMessagePartitionsRepository(job).dropIfExpired(day, 0),
      (tx) => tx`
        insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
        select gen_random_uuid(), id, ${user}, 'text', 'x', last_seq + 1, now(), expires_at from rooms where id = ${room}`,
    );
    expect(result).toEqual({ send: { ok: true, value: undefined }, job: { ok: true, value: { status: 'dropped', estimatedRows: expect.any(Number) } } });
    expect(await partitionNames(sql)).not.toContain(partitionOf(day));
  });
});
