import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Sql } from 'postgres';
import { createMessagePartitionsRepository, partitionName, uuidArrayLiteral } from '@chat/db';

/**
 * A day of messages to purge, as `pnpm bench` (the partition drop) and `pnpm bench:purge` (the
 * drop against the old batched DELETE) measure it: rooms of ROWS_PER_ROOM messages that all
 * expired on that day, in the day's own partition of a migrated database.
 */
export const ROWS_PER_ROOM = 1000;

/** Heap, indexes and TOAST of every partition of `messages` (the parent itself holds nothing). */
export async function messagesSize(sql: Sql): Promise<number> {
  const [row] = await sql<{ bytes: string }[]>`
    select coalesce(sum(pg_total_relation_size(relid)), 0)::text as bytes
    from pg_partition_tree('messages') where isleaf`;
  return Number(row!.bytes);
}

/**
 * `rooms` rooms that expired on `day` (`YYYY-MM-DD`, marked expired as the sweep does), each
 * with ROWS_PER_ROOM messages, half of them with a `clientMessageId`, written by
 * INSERT … SELECT, 50 rooms a statement (bounded transactions, the WAL of a busy day written as
 * it would be). Returns the room ids and how long the writing took (ms).
 */
export async function fillExpiredDay(sql: Sql, userId: string, day: string, rooms: number): Promise<{ roomIds: string[]; writeMs: number }> {
  await sql`select messages_ensure_partition(${day}::date)`;
  const roomIds = Array.from({ length: rooms }, () => randomUUID());
  await sql`
    insert into rooms (id, name, created_by, created_at, expires_at, expired_at, last_seq)
    select id, 'bench', ${userId}, (${day}::date - 1 + interval '12 hours') at time zone 'UTC',
           (${day}::date + interval '12 hours') at time zone 'UTC', (${day}::date + interval '12 hours 1 second') at time zone 'UTC',
           ${ROWS_PER_ROOM}
    from unnest(${uuidArrayLiteral(roomIds)}::text::uuid[]) id`;
  const started = performance.now();
  for (let from = 0; from < roomIds.length; from += 50) {
    await sql`
      insert into messages (id, room_id, user_id, type, content, client_message_id, seq, created_at, expires_at)
      select gen_random_uuid(), r.id, ${userId}, 'text', '안녕하세요, 메시지 ' || g || ' 입니다',
             case when g % 2 = 0 then r.id::text || ':' || g end, g, r.created_at + g * interval '1 second', r.expires_at
      from unnest(${uuidArrayLiteral(roomIds.slice(from, from + 50))}::text::uuid[]) ids(id)
      join rooms r on r.id = ids.id, generate_series(1, ${ROWS_PER_ROOM}::int) g`;
  }
  const writeMs = performance.now() - started;
  await sql`analyze ${sql(partitionName(day))}`;
  return { roomIds, writeMs };
}

export interface PartitionDrop {
  rows: number;
  /** What the drop reported from the planner's statistics (the partition was analyzed). */
  estimatedRows: number;
  writeMs: number;
  dropMs: number;
  bytesBefore: number;
  bytesAfter: number;
}

/**
 * Fills `day` with `rooms` expired rooms and purges it the way the worker's partition job
 * does (`dropIfExpired`, no grace): the drop's time and the size of `messages` around it.
 */
export async function fillAndDropDay(sql: Sql, userId: string, day: string, rooms: number): Promise<PartitionDrop> {
  const { writeMs } = await fillExpiredDay(sql, userId, day, rooms);
  const bytesBefore = await messagesSize(sql);
  const started = performance.now();
  const outcome = await createMessagePartitionsRepository(sql).dropIfExpired(day, 0);
  const dropMs = performance.now() - started;
  if (outcome.status !== 'dropped') throw new Error(`the day ${day} was not dropped: ${outcome.status}`);
  return { rows: rooms * ROWS_PER_ROOM, estimatedRows: outcome.estimatedRows, writeMs, dropMs, bytesBefore, bytesAfter: await messagesSize(sql) };
}
