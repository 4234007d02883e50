import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';

export interface SeededRooms {
  roomIds: string[];
  /** members[r] = the users of room r, in order. */
  members: string[][];
}

/**
 * `rooms` live rooms of `membersPerRoom` new users each, written by SQL in three statements (a
 * member's socket is put into its rooms when it connects, so no join is needed). `membersPerRoom`
 * 0 makes empty rooms, for joins to fill.
 */
export async function seedRooms(sql: postgres.Sql, rooms: number, membersPerRoom: number, label: string): Promise<SeededRooms> {
  const owner = randomUUID();
  const roomIds = Array.from({ length: rooms }, () => randomUUID());
  const members = roomIds.map(() => Array.from({ length: membersPerRoom }, () => randomUUID()));
  const users = [{ id: owner, nickname: `${label}-owner` }, ...members.flat().map((id, i) => ({ id, nickname: `${label}${i}` }))];
  await sql`insert into users (id, nickname)
    select id, nickname from jsonb_to_recordset(${JSON.stringify(users)}::text::jsonb) as x(id uuid, nickname text)`;
  await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
    select id, name, ${owner}, ${membersPerRoom}, now(), now() + interval '1 day'
    from jsonb_to_recordset(${JSON.stringify(roomIds.map((id, i) => ({ id, name: `${label}-${i}` })))}::text::jsonb) as x(id uuid, name text)`;
  if (membersPerRoom > 0) {
    const rows = members.flatMap((users, r) => users.map((user_id) => ({ room_id: roomIds[r], user_id })));
    await sql`insert into room_members (room_id, user_id)
      select room_id, user_id from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as x(room_id uuid, user_id uuid)`;
  }
  return { roomIds, members };
}

/** `count` new users who are members of nothing (they join rooms during the run). */
export async function seedUsers(sql: postgres.Sql, count: number, label: string): Promise<string[]> {
  const users = Array.from({ length: count }, (_, i) => ({ id: randomUUID(), nickname: `${label}${i}` }));
  await sql`insert into users (id, nickname)
    select id, nickname from jsonb_to_recordset(${JSON.stringify(users)}::text::jsonb) as x(id uuid, nickname text)`;
  return users.map((user) => user.id);
}
