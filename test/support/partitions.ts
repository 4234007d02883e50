import { randomUUID } from 'node:crypto';
import type { Sql } from 'postgres';

/** What the partition tests share (docs/partitions.md): days, partition names, rows' places. */

export const DAY_MS = 86_400_000;

/** The UTC day, YYYY-MM-DD, `offsetDays` from the database's today. */
export async function dayFromToday(sql: Sql, offsetDays: number): Promise<string> {
  const [row] = await sql<{ day: string }[]>`select to_char((now() at time zone 'UTC')::date + ${offsetDays}::int, 'YYYY-MM-DD') as day`;
  return row!.day;
}

/** The partition of `messages` that holds a day's rows. */
export const partitionOf = (day: string) => `messages_p${day.replaceAll('-', '')}`;

/** A user row, for rooms and messages seeded straight into the tables. */
export async function seedUser(sql: Sql, nickname: string): Promise<string> {
  const id = randomUUID();
  await sql`insert into users (id, nickname) values (${id}, ${nickname})`;
  return id;
}

/** How many of a room's messages each partition holds. */
export async function messagePlacement(sql: Sql, roomId: string): Promise<Record<string, number>> {
  const rows = await sql<{ part: string; n: number }[]>`
    select tableoid::regclass::text as part, count(*)::int as n from messages where room_id = ${roomId} group by 1`;
  return Object.fromEntries(rows.map((row) => [row.part, row.n]));
}
