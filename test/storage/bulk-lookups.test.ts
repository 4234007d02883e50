import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import {
  createMembershipsRepository,
  createMessagesRepository,
  createRoomOccupancyRepository,
  createUsersRepository,
  type Database,
} from '@chat/db';
import { databaseTest } from '../support/index.ts';

const USERS = 20_000;
const ROOMS = 2_000;

const it = databaseTest({ maxConnections: 2 });

/**
 * The worker's lookups over many ids at once, at the size a dead pod or a reconnect storm
 * hands them (a pod holds tens of thousands of users: k8s/README.md), on a real database with
 * the gateway's statement timeout (5 s). The ids travel as one array literal; written as
 * `= any($ids::text::uuid[])` in a WHERE clause, Postgres parsed the whole literal again for
 * every row it compared (measured: 600 users over 600 memberships 250 ms, 3,000 over 3,000
 * 6.3 s), so the presence collection of a large dead pod hit the statement timeout on every
 * run and never finished. `findMany` sent one parameter per id, past postgres.js's limit of
 * 65,534 for a pod of more users than that.
 */
describe('lookups over many ids', () => {
  let database: Database;
  const users = Array.from({ length: USERS }, () => randomUUID());
  const rooms = Array.from({ length: ROOMS }, () => randomUUID());

  it.beforeAll(async ({ database: db }) => {
    database = db;
    const { sql } = database;
    await sql`insert into users (id, nickname) select id::uuid, 'u' || ord from json_array_elements_text(${JSON.stringify(users)}::text::json) with ordinality as x(id, ord)`;
    await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      select id::uuid, 'bulk', ${users[0]!}, ${USERS / ROOMS}, now(), now() + interval '1 day'
      from json_array_elements_text(${JSON.stringify(rooms)}::text::json) as x(id)`;
    // User i is a member of room i mod ROOMS; room r's one message was sent by user r.
    const memberships = users.map((user, i) => ({ room_id: rooms[i % ROOMS], user_id: user }));
    await sql`insert into room_members (room_id, user_id)
      select room_id, user_id from json_to_recordset(${JSON.stringify(memberships)}::text::json) as x(room_id uuid, user_id uuid)`;
    const newest = rooms.map((room, r) => ({ room_id: room, user_id: users[r] }));
    await sql`insert into messages (id, room_id, user_id, type, content, seq, change_seq, created_at, expires_at)
      select gen_random_uuid(), x.room_id, x.user_id, 'text', 'hi', 1, 1, now() - interval '1 minute', r.expires_at
      from json_to_recordset(${JSON.stringify(newest)}::text::json) as x(room_id uuid, user_id uuid) join rooms r on r.id = x.room_id`;
    await sql`analyze`;
  }, 120_000);

  it(`memberships.activeRoomIdsOfUsers: ${USERS.toLocaleString('en')} users in one call`, async () => {
    const byUser = await createMembershipsRepository(database.sql).activeRoomIdsOfUsers(users);
    expect(byUser.size).toBe(USERS);
    expect(byUser.get(users[ROOMS + 7]!)).toEqual([rooms[7]]);
  });

  it(`roomOccupancy.membersOf: ${ROOMS.toLocaleString('en')} rooms in one call`, async () => {
    const byRoom = await createRoomOccupancyRepository(database.sql).membersOf(rooms);
    expect(byRoom.size).toBe(ROOMS);
    expect([...byRoom.values()].every((members) => members.length === USERS / ROOMS)).toBe(true);
    expect(byRoom.get(rooms[3]!)).toContain(users[ROOMS + 3]);
  });

  it(`messages.roomsLastWrittenBy: ${ROOMS.toLocaleString('en')} rooms against ${USERS.toLocaleString('en')} users`, async () => {
    const messages = createMessagesRepository(database.sql);
    const written = await messages.roomsLastWrittenBy(rooms, users, new Date());
    expect(new Set(written)).toEqual(new Set(rooms));
    // Only the senders count: the other half of the users wrote none of the newest messages.
    expect(await messages.roomsLastWrittenBy(rooms, users.slice(ROOMS), new Date())).toEqual([]);
  });

  it('users.findMany: more ids than a statement may have parameters (70,000)', async () => {
    const ids = [...users, ...Array.from({ length: 50_000 }, () => randomUUID())];
    const found = await createUsersRepository(database.db).findMany(ids);
    expect(found.size).toBe(USERS);
    expect(found.get(users[42]!)?.nickname).toBe('u43');
  });
});
