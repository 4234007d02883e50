import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import {
  createMembershipsRepository,
  createRoomOccupancyRepository,
  createSessionsRepository,
  createWebhookCursorsRepository,
  ROOM_CAP_REACHED,
  type Database,
} from '@chat/db';
import { databaseTest, seqScansOf } from '../support/index.ts';

/**
 * Statements that take a set of ids (a `json_to_recordset` or an array the planner cannot size)
 * at 5,000 users in 1,000 rooms: each id must be a lookup by key, not a hash of whole tables.
 *
 * The handshake's one statement (sessions.repository.ts): its input is a `json_to_recordset`, which the planner takes for 100 rows whatever the batch holds
 * (a handshake turn holds a few): it joined users and memberships by hashing whole tables, three
 * sequential scans per handshake turn (bench:storm, 5,000 sockets: 62-92 µs of Postgres CPU per
 * handshake, 12-14 µs with lookups by key). Each request's user and rooms are looked up by key.
 */
const USERS = 5_000;
const ROOMS = 1_000;
const BATCHES = 12;

const it = databaseTest({ maxConnections: 2 });

describe('lookups by key at 5,000 users in 1,000 rooms', () => {
  let database: Database;
  let users: string[];
  let rooms: string[];

  it.beforeAll(async ({ database: db }) => {
    database = db;
    const { sql } = database;
    users = Array.from({ length: USERS }, () => randomUUID());
    rooms = Array.from({ length: ROOMS }, () => randomUUID());
    await sql`insert into users (id, nickname) select id::uuid, '사용자' from json_array_elements_text(${JSON.stringify(users)}::text::json) as x(id)`;
    await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      select id::uuid, 'plan', ${users[0]!}, 10, now(), now() + interval '1 day'
      from json_array_elements_text(${JSON.stringify(rooms)}::text::json) as x(id)`;
    // Two rooms each.
    const memberships = users.flatMap((userId, i) => [0, 1].map((k) => ({ room_id: rooms[(i * 2 + k) % ROOMS], user_id: userId })));
    await sql`insert into room_members (room_id, user_id)
      select room_id, user_id from json_to_recordset(${JSON.stringify(memberships)}::text::json) as x(room_id uuid, user_id uuid)`;
    await sql`analyze users, rooms, room_members`;
  });

  it('finds each user and their rooms by key, stores a new or renamed user', async ({ testDb }) => {
    const scans = await seqScansOf(testDb.url, ['users', 'room_members', 'rooms'], async (sql) => {
      const sessions = createSessionsRepository(sql);
      for (let batch = 0; batch < BATCHES; batch++) {
        const [same, renamed, unnamed] = [users[batch * 3]!, users[batch * 3 + 1]!, users[batch * 3 + 2]!];
        const newcomer = randomUUID();
        const answers = await sessions.open([
          { id: same, nickname: '사용자', rooms: true },
          { id: renamed, nickname: `새이름${batch}`, rooms: true },
          { id: unnamed, nickname: null, rooms: true },
          { id: newcomer, nickname: '신규', rooms: true },
        ]);
        expect(answers.map((answer) => answer && { nickname: answer.nickname, rooms: answer.rooms.length })).toEqual([
          { nickname: '사용자', rooms: 2 },
          { nickname: `새이름${batch}`, rooms: 2 },
          { nickname: '사용자', rooms: 2 },
          { nickname: '신규', rooms: 0 },
        ]);
      }
    });
    expect(scans).toEqual({ users: 0, room_members: 0, rooms: 0 });
    expect(await database.sql`select count(*)::int as n from users where nickname like '새이름%'`).toEqual([{ n: BATCHES }]);
  });

  /**
   * The worker's: the occupancy job's and presence sweep's membership reads (each run), the
   * webhook cursors' advance (each POST). Found with auto_explain in `pnpm bench:probe --webhook
   * --rooms 1000`: each read all of `rooms` (the first all of `room_members` too) on every call,
   * ~400 sequential scans in a 40 s probe. (The occupancy job's recording: below.)
   */
  it("finds the worker's rooms and members by key and moves webhook cursors", async ({ testDb }) => {
    const { sql } = database;
    await sql`insert into webhook_endpoints (id) values ('plan') on conflict do nothing`;
    const scans = await seqScansOf(testDb.url, ['room_members', 'rooms'], async (worker) => {
      const memberships = createMembershipsRepository(worker);
      const occupancy = createRoomOccupancyRepository(worker);
      const cursors = createWebhookCursorsRepository(worker);
      // Rooms with changes, as the cursors follow them.
      await database.sql`update rooms set last_change_seq = 1 where id = any(${rooms.slice(0, BATCHES * 4)}::uuid[])`;
      for (let batch = 0; batch < BATCHES; batch++) {
        const some = rooms.slice(batch * 4, batch * 4 + 4);
        const byUser = await memberships.activeRoomIdsOfUsers(users.slice(batch * 3, batch * 3 + 3));
        expect([...byUser.values()].map((ids) => ids.length)).toEqual([2, 2, 2]);
        const byRoom = await occupancy.membersOf(some);
        expect([...byRoom.values()].map((ids) => ids.length)).toEqual([10, 10, 10, 10]);
        await cursors.advance('plan', some.map((roomId) => ({ roomId, changeSeq: 1 })));
      }
    });
    expect(scans).toEqual({ room_members: 0, rooms: 0 });
    expect(await sql`select count(*)::int as n from webhook_cursors where endpoint_id = 'plan' and delivered_change_seq = 1`).toEqual([{ n: BATCHES * 4 }]);
  });

  /**
   * join-room's count of the user's live rooms under MAX_ROOMS_PER_USER (memberships.add), for a
   * user in 402 rooms, stored and analyzed as such: as a join of `room_members` and `rooms`, the
   * planner, knowing the user's many rows, hashed all of `rooms` for every join. Each room's
   * expiry is a look-up by key.
   */
  it("counts a joining user's live rooms by key", async ({ testDb }) => {
    const { sql } = database;
    const collector = users[4_999]!;
    const held = rooms.slice(0, 400);
    await sql`insert into room_members (room_id, user_id) select unnest(${held}::uuid[]), ${collector} on conflict do nothing`;
    await sql`analyze room_members`;
    // Its two rooms of the setup as well.
    const cap = 402 + BATCHES;
    const answers: unknown[] = [];
    const scans = await seqScansOf(testDb.url, ['room_members', 'rooms'], async (worker) => {
      const memberships = createMembershipsRepository(worker);
      for (let batch = 0; batch < BATCHES; batch++) answers.push(await memberships.add(rooms[500 + batch]!, collector, cap));
      // At the cap: refused.
      answers.push(await memberships.add(rooms[900]!, collector, cap));
    });
    expect(scans).toEqual({ room_members: 0, rooms: 0 });
    expect(answers.slice(0, BATCHES).every((answer) => (answer as { changed?: boolean }).changed === true)).toBe(true);
    expect(answers.at(-1)).toBe(ROOM_CAP_REACHED);
  });

  /**
   * The occupancy job's recording (each run that finds a room changed), at 5,000 rooms. As
   * joins of `rooms` with its input (a `json_to_recordset`, planned as 100 rows) it read all of
   * `rooms` twice a run, to lock and to update: 2.3 ms a run at 1,500 rooms in `bench:probe
   * --pods 4 --rooms 1500 --webhook` (auto_explain), growing with every room of the cluster. Now
   * each room is locked by key and the update names them by an array (planned as ten ids, so
   * probed by key once a scan costs more than ten probes: from about 3,000 rooms; below that the
   * planner reads the small table whole, rightly).
   */
  it('records occupancy by key at 5,000 rooms', async ({ testDb }) => {
    const { sql } = database;
    const more = Array.from({ length: 4_000 }, () => randomUUID());
    await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      select id::uuid, 'plan', ${users[0]!}, 0, now(), now() + interval '1 day'
      from json_array_elements_text(${JSON.stringify(more)}::text::json) as x(id)`;
    await sql`analyze rooms`;
    const recorded: { roomId: string; occupied: boolean; changeSeq: number }[] = [];
    const scans = await seqScansOf(testDb.url, ['rooms'], async (worker) => {
      const occupancy = createRoomOccupancyRepository(worker);
      for (let batch = 0; batch < BATCHES; batch++) {
        const some = more.slice(batch * 4, batch * 4 + 4);
        // One of them twice, and one already as recorded (vacant): neither is a change.
        const wanted = [...some.map((roomId) => ({ roomId, occupied: true })), { roomId: some[0]!, occupied: true }, { roomId: more[3_999]!, occupied: false }];
        recorded.push(...(await occupancy.recordMany(wanted)));
      }
    });
    expect(scans).toEqual({ rooms: 0 });
    expect(recorded).toHaveLength(BATCHES * 4);
    expect(new Set(recorded.map((room) => room.roomId)).size).toBe(BATCHES * 4);
    expect(recorded.every((room) => room.occupied && room.changeSeq === 1)).toBe(true);
    const events = await sql<{ n: number }[]>`
      select count(*)::int as n from room_events where kind = 'room-occupied' and room_id = any(${more.slice(0, BATCHES * 4)}::uuid[])`;
    expect(events).toEqual([{ n: BATCHES * 4 }]);
  });
});
