import { setTimeout as delay } from 'node:timers/promises';
import pino from 'pino';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDatabase,
  createMessagePartitionsRepository,
  createMessagesRepository,
  createRoomLifetimeRepository,
  type Database,
  type MessagePartitionsRepository,
} from '@chat/db';
import { createWorkerMetrics, partitionMaintenanceJob, PartitionMaintenanceError, runPartitionMaintenance } from '@chat/worker';
import { createTestDatabase, type TestDatabase } from '@chat/testing';

import { DAY_MS, dayFromToday, messagePlacement, newMessage, partitionOf, seedRoomWithMessages, seedUser } from '../support/partitions.ts';

/**
 * Rows that piled up in messages_default (the worker down longer than its look-ahead) are moved
 * into their days in bounded batches that hold no lock a send waits for, then attached in one
 * short locked step (migration 0010, docs/partitions.md); and one failing step of the partition
 * job does not stop the others. Real Postgres; every database here is this file's own (the job
 * creates and drops days of the whole database). Batches of a few dozen rows, so a few hundred
 * rows make many batches.
 */

const logger = pino({ level: 'silent' });
/** A room expiring at `expiresAt` with `count` messages (seq 1..count, every tenth soft-deleted). */
const makeRoom = (sql: Sql, userId: string, expiresAt: Date, count: number) => seedRoomWithMessages(sql, userId, expiresAt, count, 10);

/** Every row of `messages`, every column: equal before and after means nothing lost, added or changed. */
async function fingerprint(sql: Sql): Promise<{ n: number; ids: number; digest: string }> {
  const [row] = await sql<{ n: number; ids: number; digest: string }[]>`
    select count(*)::int as n, count(distinct id)::int as ids,
           md5(string_agg(concat_ws('|', id, room_id, user_id, type, content, image_url, client_message_id, seq, change_seq,
                                    deleted_change_seq, created_at, expires_at, is_deleted), ',' order by id)) as digest
    from messages`;
  return row!;
}

async function seqs(sql: Sql, roomId: string): Promise<number[]> {
  const rows = await sql<{ seq: number }[]>`select seq::int as seq from messages where room_id = ${roomId} order by seq`;
  return rows.map((row) => row.seq);
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => from + index);

async function attached(sql: Sql): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'messages'::regclass order by 1`;
  return rows.map((row) => row.name);
}

/** What a finished move leaves: no state, no staged table, the log off and empty, no bound constraint. */
async function expectNoMoveLeft(sql: Sql): Promise<void> {
  const [state] = await sql<{ moves: number; days: number; changes: number; logging: boolean; bounds: number; loose: number }[]>`
    select (select count(*)::int from messages_default_move) as moves,
           (select count(*)::int from messages_default_move_days) as days,
           (select count(*)::int from messages_default_changes) as changes,
           (select tgenabled <> 'D' from pg_trigger where tgname = 'messages_default_log_change') as logging,
           (select count(*)::int from pg_constraint where conname ~ '^messages_p[0-9]{8}_bound$') as bounds,
           (select count(*)::int from pg_class where relname ~ '^messages_p[0-9]{8}$' and relkind = 'r' and not relispartition) as loose`;
  expect(state).toEqual({ moves: 0, days: 0, changes: 0, logging: false, bounds: 0, loose: 0 });
}

/** Polls (bounded) until the move is under way and has copied at least one batch. */
async function untilCopying(sql: Sql, job: { settled: boolean }): Promise<void> {
  for (let attempt = 0; attempt < 400; attempt++) {
    const rows = await sql`select 1 from messages_default_move where copied_through_id is not null`.catch(() => []);
    if (rows.length > 0) return;
    if (job.settled) throw new Error('the job ended before its move was seen under way');
    await delay(10);
  }
  throw new Error('the move never started');
}

const moveUnderWay = async (sql: Sql) => (await sql<{ n: number }[]>`select count(*)::int as n from messages_default_move`)[0]!.n === 1;

/** What the partition job's relocation does for a room after an extend or close, all of it. */
async function relocateAll(partitions: MessagePartitionsRepository, roomId: string): Promise<void> {
  for (let batch = 0; batch < 100; batch++) {
    if ((await partitions.relocateBatch(roomId, 20)).remaining === 0) return;
  }
  throw new Error('relocation never ended');
}

/** A partitions repository that counts the move's bulk-copy batches. */
function countingBatches(partitions: MessagePartitionsRepository): { partitions: MessagePartitionsRepository; copies: number[] } {
  const copies: number[] = [];
  return {
    copies,
    partitions: {
      ...partitions,
      copyBatch: async (rows: number) => {
        const copied = await partitions.copyBatch(rows);
        copies.push(copied);
        return copied;
      },
    },
  };
}

describe('moving messages_default into its days', () => {
  let database: TestDatabase;
  let db: Database;
  let sql: Sql;
  let user: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ url: database.url, maxConnections: 6 });
    sql = postgres(database.url, { max: 4, onnotice: () => {} });
    user = await seedUser(sql, '이동');
  });
  afterAll(async () => {
    await sql?.end({ timeout: 5 });
    await db?.close();
    await database?.drop();
  });

  // A user's send, checked for membership (makeRoom made the user a member).
  const message = (roomId: string, clientMessageId: string | null) => newMessage(roomId, user, clientMessageId, { content: '늦게', requireMember: true });

  it('copies them in batches, attaches each day, and every row comes out as it was, once', { timeout: 30_000 }, async () => {
    // Farther than the job ever looks ahead (40 days): no partition waits for these days.
    const first = await dayFromToday(sql, 45);
    const second = await dayFromToday(sql, 46);
    const a = await makeRoom(sql, user, new Date(`${first}T12:00:00.000Z`), 240);
    const b = await makeRoom(sql, user, new Date(`${second}T03:00:00.000Z`), 130);
    expect(await messagePlacement(sql, a)).toEqual({ messages_default: 240 });
    const before = await fingerprint(sql);

    const { partitions, copies } = countingBatches(createMessagePartitionsRepository(db.sql));
    const run = await runPartitionMaintenance({ partitions, logger, moveBatchRows: 50 });

    // 370 rows in batches of 50: 8 batches, and the one that finds the copy done.
    expect(copies).toEqual([50, 50, 50, 50, 50, 50, 50, 20, 0]);
    expect(run.failed).toEqual([]);
    expect(run).toMatchObject({ rowsMoved: 370, moving: false });
    expect(run.created).toEqual(expect.arrayContaining([first, second]));
    expect(await messagePlacement(sql, a)).toEqual({ [partitionOf(first)]: 240 });
    expect(await messagePlacement(sql, b)).toEqual({ [partitionOf(second)]: 130 });
    expect(await sql`select count(*)::int as n from messages_default`).toEqual([{ n: 0 }]);
    expect(await fingerprint(sql)).toEqual(before);
    expect(before.ids).toBe(before.n);
    expect(await seqs(sql, a)).toEqual(range(1, 240));
    expect(await seqs(sql, b)).toEqual(range(1, 130));
    expect(await attached(sql)).toEqual(expect.arrayContaining([partitionOf(first), partitionOf(second)]));
    await expectNoMoveLeft(sql);

    // The attached days carry the partitioned indexes: the keys hold on the moved rows.
    const copyOf = (seq: number, clientMessageId: string | null) => sql`
      insert into messages (id, room_id, user_id, type, content, client_message_id, seq, created_at, expires_at)
      select gen_random_uuid(), room_id, user_id, type, content, ${clientMessageId}, ${seq}, created_at, expires_at
      from messages where room_id = ${a} and seq = 1`;
    await expect(copyOf(1, null)).rejects.toMatchObject({ code: '23505' });
    await expect(copyOf(10_000, `${a}-1`)).rejects.toMatchObject({ code: '23505' });

    // Idempotent: nothing left to move, nothing to create.
    expect(await runPartitionMaintenance({ partitions, logger, moveBatchRows: 50 })).toMatchObject({ created: [], rowsMoved: 0, failed: [] });
  });

  it('carries over what sends, retries, deletes and expiry changes do meanwhile; reads see every row throughout', { timeout: 30_000 }, async () => {
    const messages = createMessagesRepository(db.sql);
    const lifetime = createRoomLifetimeRepository(db.sql);
    const day = await dayFromToday(sql, 48);
    const laterDay = await dayFromToday(sql, 49);
    const otherDay = await dayFromToday(sql, 50);
    const a = await makeRoom(sql, user, new Date(`${day}T12:00:00.000Z`), 200);
    const b = await makeRoom(sql, user, new Date(`${otherDay}T12:00:00.000Z`), 100);
    const closing = await makeRoom(sql, user, new Date(`${day}T18:00:00.000Z`), 50);
    // A room in tomorrow's partition, to be extended into the day being moved: its rows enter
    // messages_default during the move.
    const extended = await makeRoom(sql, user, new Date(Date.now() + DAY_MS), 30);

    const partitions = createMessagePartitionsRepository(db.sql);
    const state = { settled: false };
    // 350 rows, 25 a batch, 100 ms after each: the copy lasts well over a second.
    const job = runPartitionMaintenance({ partitions, logger, moveBatchRows: 25, moveBatchPauseMs: 100 }).finally(() => {
      state.settled = true;
    });
    await untilCopying(sql, state);
    // Two of the room's messages copied already into the day's table (staged, not attached).
    let copied: { id: string; client_message_id: string; is_deleted: boolean }[] = [];
    for (let attempt = 0; attempt < 200 && copied.length < 2; attempt++) {
      if (attempt > 0) await delay(10);
      const staged = await sql`select to_regclass(${partitionOf(day)}) is not null as present`;
      if (!staged[0]!.present) continue;
      copied = await sql`select id, client_message_id, is_deleted from ${sql(partitionOf(day))}
                         where room_id = ${a} and not is_deleted order by seq limit 2`;
    }
    expect(copied).toHaveLength(2);
    const [retried, early] = copied;

    // A send and a retry of a message copied already: the retry finds its original.
    const sent = await messages.insertBatch([message(a, 'during-move'), message(a, retried!.client_message_id)]);
    expect(sent.map((outcome) => outcome.status)).toEqual(['stored', 'duplicate']);
    expect(sent[0]).toMatchObject({ message: { seq: 201 } });
    // Deleting a message copied already; the room's history sees every message meanwhile.
    expect(await messages.softDelete(early!.id, user)).not.toBeNull();
    expect(await seqs(sql, a)).toEqual(range(1, 201));
    const page = await messages.page(a, { afterId: null, beforeId: null, order: 'newest', limit: 100 });
    expect(page.rows.length).toBeGreaterThan(0);
    expect(page.rows[0]).toMatchObject({ seq: 201 });
    // One room's expiry moved to another day without a partition, another's closed now, a third
    // extended into the day being moved; the worker's relocation of their messages (made here by
    // hand, as another worker's run would) moves the rows out of the days they were copied to,
    // deletes the closed room's, and brings the third's into messages_default.
    expect(await lifetime.setExpiry(b, new Date(`${laterDay}T06:00:00.000Z`))).toMatchObject({ status: 'changed' });
    expect(await lifetime.setExpiry(closing, 'now')).toMatchObject({ status: 'changed' });
    expect(await lifetime.setExpiry(extended, new Date(`${day}T20:00:00.000Z`))).toMatchObject({ status: 'changed' });
    for (const room of [b, closing, extended]) await relocateAll(partitions, room);
    expect(await messagePlacement(sql, extended)).toEqual({ messages_default: 30 });
    expect(await messagePlacement(sql, closing)).toEqual({});

    // All of it happened while the move was under way; what `messages` shows now is what it must
    // show once the days are attached.
    const expected = await fingerprint(sql);
    expect(await moveUnderWay(sql)).toBe(true);
    expect(state.settled).toBe(false);

    const run = await job;
    expect(run.failed).toEqual([]);
    expect(run.created).toEqual(expect.arrayContaining([day, laterDay]));
    expect(await fingerprint(sql)).toEqual(expected);
    expect(expected.ids).toBe(expected.n);
    expect(await messagePlacement(sql, a)).toEqual({ [partitionOf(day)]: 201 });
    expect(await seqs(sql, a)).toEqual(range(1, 201));
    expect(await sql`select is_deleted from messages where id = ${early!.id}`).toEqual([{ is_deleted: true }]);
    expect(await sql`select count(*)::int as n from messages where user_id = ${user} and client_message_id = ${retried!.client_message_id}`).toEqual([{ n: 1 }]);
    expect(await messagePlacement(sql, b)).toEqual({ [partitionOf(laterDay)]: 100 });
    expect(await messagePlacement(sql, closing)).toEqual({});
    expect(await messagePlacement(sql, extended)).toEqual({ [partitionOf(day)]: 30 });
    for (const room of [a, b, extended]) {
      // Every message still carries its room's expiry: one partition per room.
      expect(await sql`select count(*)::int as n from messages m join rooms r on r.id = m.room_id
                       where m.room_id = ${room} and m.expires_at <> r.expires_at`).toEqual([{ n: 0 }]);
    }
    expect(await sql`select count(*)::int as n from messages_default`).toEqual([{ n: 0 }]);
    await expectNoMoveLeft(sql);
  });

  it('a move cut off between batches goes on at the next run; rows copied before are neither lost nor doubled', { timeout: 30_000 }, async () => {
    const day = await dayFromToday(sql, 52);
    const a = await makeRoom(sql, user, new Date(`${day}T12:00:00.000Z`), 200);
    const partitions = createMessagePartitionsRepository(db.sql);

    // A worker that stopped after two batches: 100 rows staged, not attached, the log on.
    expect(await partitions.beginMove()).toBe(true);
    expect(await partitions.copyBatch(50)).toBe(50);
    expect(await partitions.copyBatch(50)).toBe(50);
    const [gone, edited] = await sql<{ id: string }[]>`select id from ${sql(partitionOf(day))} order by id limit 2`;
    // Rows staged already change meanwhile: one deleted outright, one edited; new ones arrive.
    await sql`delete from messages where id = ${gone!.id}`;
    await sql`update messages set content = 'edited' where id = ${edited!.id}`;
    await createMessagesRepository(db.sql).insertBatch(range(1, 5).map(() => message(a, null)));
    // A day is not created beside a move under way (it would scan messages_default under the
    // rooms lock, and the move creates the days of its rows).
    await expect(partitions.ensure(await dayFromToday(sql, 53))).rejects.toMatchObject({ code: '55006' });
    const expected = await fingerprint(sql);

    // A run whose budget ends after a batch leaves the move for the next, and creates no day.
    const short = await runPartitionMaintenance({ partitions, logger, moveBatchRows: 50, moveBudgetMs: 0 });
    expect(short).toMatchObject({ moving: true, created: [], failed: [], rowsMoved: 50 });
    expect(await moveUnderWay(sql)).toBe(true);

    const run = await runPartitionMaintenance({ partitions, logger, moveBatchRows: 50 });
    expect(run).toMatchObject({ moving: false, failed: [] });
    expect(run.created).toContain(day);
    expect(await fingerprint(sql)).toEqual(expected);
    expect(expected.n).toBe(expected.ids);
    expect(await messagePlacement(sql, a)).toEqual({ [partitionOf(day)]: 204 });
    expect(await sql`select content from messages where id = ${edited!.id}`).toEqual([{ content: 'edited' }]);
    expect(await sql`select count(*)::int as n from messages where id = ${gone!.id}`).toEqual([{ n: 0 }]);
    await expectNoMoveLeft(sql);
  });
});

describe('sends next to the move', () => {
  let database: TestDatabase;
  let db: Database;
  let sql: Sql;
  let user: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ url: database.url, maxConnections: 4 });
    sql = postgres(database.url, { max: 4, onnotice: () => {} });
    user = await seedUser(sql, '이동');
  });
  afterAll(async () => {
    await sql?.end({ timeout: 5 });
    await db?.close();
    await database?.drop();
  });

  /**
   * What the batch statement takes first, a room row lock (FOR UPDATE: ROW SHARE on rooms, the
   * lock the old move's EXCLUSIVE lock on rooms held up), then a row stored in the room's day;
   * on its own connection, with the worker's lock_timeout. Returns its time in ms.
   */
  async function timedSend(roomId: string): Promise<number> {
    const send = postgres(database.url, { max: 1, onnotice: () => {}, connection: { lock_timeout: 5000 } });
    try {
      await send`select 1`;
      const started = performance.now();
      await send.begin(async (tx) => {
        const [room] = await tx<{ last_seq: number }[]>`select last_seq::int as last_seq from rooms where id = ${roomId} for update`;
        await tx`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
                 select gen_random_uuid(), id, ${user}, 'text', 'x', ${room!.last_seq + 1}, now(), expires_at from rooms where id = ${roomId}`;
        await tx`update rooms set last_seq = last_seq + 1 where id = ${roomId}`;
      });
      return performance.now() - started;
    } finally {
      await send.end({ timeout: 5 });
    }
  }

  it('a send takes its room lock at once while the batches run', { timeout: 30_000 }, async () => {
    const day = await dayFromToday(sql, 45);
    const waiting = await makeRoom(sql, user, new Date(`${day}T12:00:00.000Z`), 300);
    const live = await makeRoom(sql, user, new Date(Date.now() + 3_600_000), 0);
    const state = { settled: false };
    // 300 rows, 20 a batch, 100 ms after each: about two seconds of moving.
    const started = performance.now();
    const job = runPartitionMaintenance({ partitions: createMessagePartitionsRepository(db.sql), logger, moveBatchRows: 20, moveBatchPauseMs: 100 }).finally(() => {
      state.settled = true;
    });
    await untilCopying(sql, state);

    // A send to a room of the day being moved (its row lands in messages_default) and one to a
    // room with a partition: each is a few ms, not the length of the move.
    const times = [await timedSend(waiting), await timedSend(live), await timedSend(waiting)];
    expect(await moveUnderWay(sql)).toBe(true);
    for (const ms of times) expect(ms).toBeLessThan(500);

    const run = await job;
    const moveMs = performance.now() - started;
    expect(moveMs).toBeGreaterThan(1_000);
    expect(run).toMatchObject({ failed: [], moving: false });
    expect(run.created).toContain(day);
    expect(await messagePlacement(sql, waiting)).toEqual({ [partitionOf(day)]: 302 });
    expect(await seqs(sql, waiting)).toEqual(range(1, 302));
  });

  it('a reader of messages_default holds up its locked end, not the sends: each attempt waits briefly', { timeout: 30_000 }, async () => {
    const day = await dayFromToday(sql, 46);
    const waiting = await makeRoom(sql, user, new Date(`${day}T12:00:00.000Z`), 60);
    const live = await makeRoom(sql, user, new Date(Date.now() + 3_600_000), 0);
    // A long read of `messages` (ACCESS SHARE on every partition, messages_default too), open
    // for 1.5 s. The end of the move needs messages_default to itself and holds rooms meanwhile.
    const reader = postgres(database.url, { max: 1, onnotice: () => {} });
    let reading!: Promise<unknown>;
    const opened = new Promise<void>((resolve) => {
      reading = reader.begin(async (tx) => {
        await tx`select count(*) from messages where room_id = ${waiting}`;
        resolve();
        await delay(1_500);
      });
    });
    await opened;
    const runs = runPartitionMaintenance({ partitions: createMessagePartitionsRepository(db.sql), logger, moveBatchRows: 50, moveLockWaitMs: 200 });

    const times: number[] = [];
    const until = performance.now() + 1_400;
    while (performance.now() < until) {
      times.push(await timedSend(live));
      await delay(30);
    }
    await reading;
    await reader.end({ timeout: 5 });
    const first = await runs;
    // Every send went through while the reader held messages_default (1.5 s): at most one short
    // lock wait of the move's end each.
    expect(Math.max(...times)).toBeLessThan(700);
    expect(times.length).toBeGreaterThan(3);
    // The end either got its locks at a later attempt, or gave up for this run (55P03, reported);
    // the next run ends it. Either way the sends never waited for the reader.
    const second = first.failed.length > 0 ? await runPartitionMaintenance({ partitions: createMessagePartitionsRepository(db.sql), logger, moveBatchRows: 50 }) : first;
    expect(first.failed.map((failure) => (failure.error as { code?: string }).code)).toEqual(first.failed.length > 0 ? ['55P03'] : []);
    expect(second.failed).toEqual([]);
    expect([...first.created, ...second.created]).toContain(day);
    expect(await messagePlacement(sql, waiting)).toEqual({ [partitionOf(day)]: 60 });
  });
});

describe('one failing step of the partition job', () => {
  let database: TestDatabase;
  let db: Database;
  let sql: Sql;
  let user: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ url: database.url, maxConnections: 2 });
    sql = postgres(database.url, { max: 2, onnotice: () => {} });
    user = await seedUser(sql, '이동');
  });
  afterAll(async () => {
    await sql?.end({ timeout: 5 });
    await db?.close();
    await database?.drop();
  });

  it('does not stop the others: the other days are created, the expired one dropped, the failure logged and the job failed', { timeout: 30_000 }, async () => {
    const partitions = createMessagePartitionsRepository(db.sql);
    const [in3, in4, in5, in6] = await Promise.all([3, 4, 5, 6].map((offset) => dayFromToday(sql, offset)));
    const twoDaysAgo = await dayFromToday(sql, -2);
    // A live room expiring in six days: days 3..6 are wanted. Day 4 cannot be made: a type holds
    // its name (CREATE TABLE fails, 42710).
    await makeRoom(sql, user, new Date(`${in6}T06:00:00.000Z`), 0);
    await sql.unsafe(`create domain ${partitionOf(in4!)} as integer`);
    // A day over, its room swept: due to be dropped.
    await partitions.ensure(twoDaysAgo);
    const swept = await makeRoom(sql, user, new Date(`${twoDaysAgo}T10:00:00.000Z`), 20);
    await sql`update rooms set expired_at = now(), member_count = 0 where id = ${swept}`;

    const lines: { level: number; msg: string; day?: string; step?: string }[] = [];
    const capture = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });

    const result = await runPartitionMaintenance({ partitions, logger: capture });
    expect(result.failed).toEqual([{ step: 'create', day: in4, error: expect.objectContaining({ code: '42710' }) }]);
    expect(result.created).toEqual([in3, in5, in6]);
    expect(result.dropped).toEqual([twoDaysAgo]);
    const names = await attached(sql);
    for (const day of [in3, in5, in6]) expect(names).toContain(partitionOf(day!));
    expect(names).not.toContain(partitionOf(in4!));
    expect(names).not.toContain(partitionOf(twoDaysAgo));
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, msg: 'partition maintenance step failed', step: 'create', day: in4 }));

    // As the scheduled job, the run fails once the rest is done: the runner counts it in
    // chat_worker_job_failures_total and logs it (job-runner.ts); dropped rows are still counted.
    const metrics = createWorkerMetrics();
    const job = partitionMaintenanceJob({ partitions, logger }, metrics);
    const failure = await job().then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(PartitionMaintenanceError);
    expect((failure as Error).message).toContain(`create ${in4}`);
    expect((failure as PartitionMaintenanceError).result).toMatchObject({ created: [], dropped: [] });
    expect((await metrics.rowsPurged.get()).values).toEqual([expect.objectContaining({ labels: { table: 'messages' } })]);

    // Once the name is free, the next run creates the day and succeeds.
    await sql.unsafe(`drop domain ${partitionOf(in4!)}`);
    expect(await job()).toMatchObject({ created: [in4], failed: [] });
  });
});
