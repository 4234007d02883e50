import { randomUUID } from 'node:crypto';
import type { Sql } from 'postgres';
import type { NewMessage } from '@chat/db';

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

/**
 * A room expiring at `expiresAt` with one member, `userId`, and `count` messages of theirs
 * written straight into the table: seq and change_seq 1..count, clientMessageId `<room>-<seq>`,
 * every `deletedEvery`th soft-deleted (none when 0).
 */
export async function seedRoomWithMessages(sql: Sql, userId: string, expiresAt: Date, count: number, deletedEvery = 0): Promise<string> {
  const id = randomUUID();
  await sql.begin(async (tx) => {
    await tx`insert into rooms (id, name, created_by, created_at, expires_at, last_seq, last_change_seq, member_count)
             values (${id}, 'm', ${userId}, ${new Date(expiresAt.getTime() - DAY_MS)}, ${expiresAt}, ${count}, ${count}, 1)`;
    await tx`insert into room_members (room_id, user_id) values (${id}, ${userId})`;
    await tx`insert into messages (id, room_id, user_id, type, content, client_message_id, seq, change_seq, created_at, expires_at, is_deleted)
             select gen_random_uuid(), ${id}, ${userId}, 'text', 'm ' || g, ${id}::text || '-' || g, g, g, now(), ${expiresAt},
                    ${deletedEvery}::int > 0 and g % greatest(${deletedEvery}::int, 1) = 0
             from generate_series(1, ${count}::int) g`;
  });
  return id;
}

/** A message for the batch insert, from `userId` (a user's send checked for membership when `requireMember`). */
export function newMessage(roomId: string, userId: string, clientMessageId: string | null, { content = '안녕', requireMember = false } = {}): NewMessage {
  return { id: randomUUID(), roomId, userId, type: 'text', content, imageUrl: null, clientMessageId, createdAt: new Date(), requireMember };
}
