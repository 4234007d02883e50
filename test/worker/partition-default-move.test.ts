import { randomUUID } from 'node:crypto';
import pino from 'pino';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, createMessagePartitionsRepository, type Database } from '@chat/db';
import { createWorkerMetrics, partitionMaintenanceJob, PartitionMaintenanceError, runPartitionMaintenance } from '@chat/worker';
import { createTestDatabase, type TestDatabase } from '@chat/testing';

/**
 * One failing step of the partition job does not stop the others (docs/partitions.md). Real
 * Postgres; every database here is this file's own (the job creates and drops days of the whole
 * database).
 */

const logger = pino({ level: 'silent' });
const DAY_MS = 86_400_000;

async function dayFromToday(sql: Sql, offsetDays: number): Promise<string> {
  const [row] = await sql<{ day: string }[]>`select to_char((now() at time zone 'UTC')::date + ${offsetDays}::int, 'YYYY-MM-DD') as day`;
  return row!.day;
}

const partitionOf = (day: string) => `messages_p${day.replaceAll('-', '')}`;

async function makeUser(sql: Sql): Promise<string> {
  const id = randomUUID();
  await sql`insert into users (id, nickname) values (${id}, '이동')`;
  return id;
}

/** A room expiring at `expiresAt` with `count` messages (seq 1..count, every tenth soft-deleted). */
async function makeRoom(sql: Sql, userId: string, expiresAt: Date, count: number): Promise<string> {
  const id = randomUUID();
  await sql.begin(async (tx) => {
    await tx`insert into rooms (id, name, created_by, created_at, expires_at, last_seq, last_change_seq, member_count)
             values (${id}, 'm', ${userId}, ${new Date(expiresAt.getTime() - DAY_MS)}, ${expiresAt}, ${count}, ${count}, 1)`;
    await tx`insert into room_members (room_id, user_id) values (${id}, ${userId})`;
    await tx`insert into messages (id, room_id, user_id, type, content, client_message_id, seq, change_seq, created_at, expires_at, is_deleted)
             select gen_random_uuid(), ${id}, ${userId}, 'text', 'm ' || g, ${id}::text || '-' || g, g, g, now(), ${expiresAt}, g % 10 = 0
             from generate_series(1, ${count}::int) g`;
  });
  return id;
}

async function attached(sql: Sql): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'messages'::regclass order by 1`;
  return rows.map((row) => row.name);
}

describe('one failing step of the partition job', () => {
  let database: TestDatabase;
  let db: Database;
  let sql: Sql;
  let user: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ url: database.url, maxConnections: 2 });
    sql = postgres(database.url, { max: 2, onnotice: () => {} });
    user = await makeUser(sql);
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
