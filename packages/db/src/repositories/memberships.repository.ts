import type { MemberListPosition } from '@chat/protocol';
import type { Sql } from 'postgres';
import { asDate } from './messages.repository.ts';
import { uuidArrayLiteral } from './uuid-array.ts';

/** `add`'s answer when the user already holds the most live memberships allowed (MAX_ROOMS_PER_USER). */
export const ROOM_CAP_REACHED = 'room-cap-reached';

export interface MembershipChange {
  /** False when nothing changed (already a member / not a member). */
  changed: boolean;
  memberCount: number;
  /** The change's number in the room's feed (user-joined / user-left); null when unchanged. */
  changeSeq: number | null;
}

/** What a join answers besides the change: the room's feed as of the join (PROTOCOL §2, §16). */
export interface JoinChange extends MembershipChange {
  /**
   * The room's last change number once the join held the room: the join's own `user-joined` when
   * it added the member, else the latest change before it. Every later change has a higher one.
   */
  lastChangeSeq: number;
}

/** A repeat join's answer (a socket already in the room): read by key, no write. */
export interface RoomJoinFacts {
  memberCount: number;
  lastChangeSeq: number;
  /** Whether the user is a member as of the read (a leave on another device may have overtaken the socket's move). */
  isMember: boolean;
}

/**
 * Membership and the room's `member_count` change in one statement, so the counter can never
 * drift from the rows. The same statement numbers the change in the room's feed
 * (`last_change_seq`, under the room row's lock taken by that update) and writes its
 * `room_events` row: no number is taken unless the membership really changed. Each is a single
 * round trip and an implicit transaction, except `add`, which first locks the user's row in a
 * transaction of its own to keep the user's memberships under a cap (see below).
 */
export function createMembershipsRepository(sql: Sql) {
  /**
   * The active rooms of many users in one query: userId → room ids (users without any are
   * absent). The ids are a set to join (see uuid-array.ts). Each user's rooms are a lookup of
   * their own, by room_members' user index and rooms' key (a lateral sub-select that `offset 0`
   * keeps from being merged into the join): joined plainly, an array the planner cannot size
   * was hashed against all of `room_members` and `rooms`, read whole for every occupancy run
   * and presence sweep in a database of fewer than some tens of thousands of memberships
   * (test/storage/key-lookup-plans.test.ts).
   */
  async function activeRoomIdsOfUsers(userIds: readonly string[]): Promise<Map<string, string[]>> {
    const byUser = new Map<string, string[]>();
    if (userIds.length === 0) return byUser;
    const rows = await sql<{ user_id: string; room_id: string }[]>`
      select u.id as user_id, m.room_id from unnest(${uuidArrayLiteral(userIds)}::text::uuid[]) as u(id)
      cross join lateral (
        select m.room_id from room_members m join rooms r on r.id = m.room_id
        where m.user_id = u.id and r.expires_at > now()
        offset 0) m`;
    for (const row of rows) {
      const rooms = byUser.get(row.user_id);
      if (rooms) rooms.push(row.room_id);
      else byUser.set(row.user_id, [row.room_id]);
    }
    return byUser;
  }

  /**
   * Every membership row of many users, live or in a room past its expiry that the sweep has
   * not purged yet: userId → roomId → live (users without any are absent). The realtime layer
   * puts a user's sockets where these say (membership-reconciler.ts); an expired room's members
   * stay in it until the sweep has told them. Each user's rows by room_members' user index, as
   * `activeRoomIdsOfUsers`.
   */
  async function membershipsOfUsers(userIds: readonly string[]): Promise<Map<string, Map<string, boolean>>> {
    const byUser = new Map<string, Map<string, boolean>>();
    if (userIds.length === 0) return byUser;
    const rows = await sql<{ user_id: string; room_id: string; live: boolean }[]>`
      select u.id as user_id, m.room_id, m.live from unnest(${uuidArrayLiteral(userIds)}::text::uuid[]) as u(id)
      cross join lateral (
        select m.room_id, r.expires_at > now() as live from room_members m join rooms r on r.id = m.room_id
        where m.user_id = u.id
        offset 0) m`;
    for (const row of rows) {
      let rooms = byUser.get(row.user_id);
      if (!rooms) byUser.set(row.user_id, (rooms = new Map()));
      rooms.set(row.room_id, row.live);
    }
    return byUser;
  }

  return {
    membershipsOfUsers,
    /**
     * Adds the member unless the room is gone or expired (then `null`), or unless the user
     * already holds `maxRooms` memberships in live rooms (then `ROOM_CAP_REACHED`, and nothing
     * is written but the lock below). Already a member: unchanged, whatever the count.
     *
     * Exact under concurrency (the same user joining on several pods at once): the user's row is
     * locked (`for no key update`, which room_members' and rooms' foreign key checks do not wait
     * for) by a first statement, and the insert with its count runs as a second statement of the
     * same transaction, so its snapshot, taken once the lock is held, sees every membership the
     * user's earlier adds committed. Counted in one statement with the insert, the count's
     * snapshot would predate a concurrent add that the lock made it wait for. Three round trips
     * (BEGIN, the two statements pipelined, COMMIT) instead of one, for an event a user may
     * send MEMBERSHIP_RATE_LIMIT_PER_MINUTE times a minute. A concurrent leave is not waited
     * for: at worst a join exactly at the cap is refused while a leave commits.
     *
     * The count stops at `maxRooms` live rooms: room_members' user index, then each room's expiry
     * by its key (a scalar sub-select, which the planner cannot turn into a join: as a join, a
     * user with hundreds of memberships had all of `rooms` hashed for every join; the plan is
     * checked by test/storage/key-lookup-plans.test.ts). About 1.3 ms of execution for a user in
     * 799 rooms, 499 live (EXPLAIN ANALYZE, 5,300 rooms). Memberships of expired rooms are
     * skipped, not counted; the expiry sweep deletes them.
     *
     * The room's row is locked first (`live`, the lock its counter's update takes anyway) and is
     * judged live by `clock_timestamp()` on the row as the lock leaves it: a join that queued
     * behind the server API's close (which sets `expires_at` to the moment it held the room,
     * after this statement began) is refused instead of adding a member to the closed room and
     * a `user-joined` after its `room-lifetime-changed`. Every statement that writes both a
     * membership and the room's row takes the room first (`remove` too), so a join and a leave
     * of one user at the same instant queue on the room and never deadlock.
     */
    async add(roomId: string, userId: string, maxRooms: number): Promise<JoinChange | typeof ROOM_CAP_REACHED | null> {
      const [, rows] = await sql.begin((tx) => [
        tx`select 1 from users where id = ${userId} for no key update`,
        tx<{ added: boolean; live: boolean; member: boolean; held: number; member_count: number | null; change_seq: number | null; last_change_seq: number | null }[]>`
          with live as (
            -- The room's row, locked before the membership is written and judged live by the
            -- clock once held (see the comment above)
            select last_change_seq from rooms where id = ${roomId} and expires_at > clock_timestamp() for no key update
          ), held as (
            select count(*)::int as n from (
              select 1 from room_members m
              where m.user_id = ${userId}
                and (select r.expires_at from rooms r where r.id = m.room_id) > now()
              limit ${maxRooms}
            ) h
          ), inserted as (
            insert into room_members (room_id, user_id)
            select ${roomId}, ${userId}
            where exists (select 1 from live) and (select n from held) < ${maxRooms}
            on conflict do nothing
            returning room_id
          ), counted as (
            update rooms set member_count = member_count + 1, last_change_seq = last_change_seq + 1
            where id in (select room_id from inserted)
            returning id, member_count, last_change_seq
          ), recorded as (
            insert into room_events (room_id, change_seq, kind, user_id, member_count)
            select id, last_change_seq, 'user-joined', ${userId}, member_count from counted
          )
          select exists (select 1 from inserted) as added,
                 exists (select 1 from live) as live,
                 exists (select 1 from room_members where room_id = ${roomId} and user_id = ${userId}) as member,
                 (select n from held) as held,
                 (select last_change_seq from counted) as change_seq,
                 -- the locked row's (not the snapshot's): the latest change before this join
                 coalesce((select last_change_seq from counted), (select last_change_seq from live)) as last_change_seq,
                 coalesce(
                   (select member_count from counted),
                   (select member_count from rooms where id = ${roomId} and expires_at > now())
                 ) as member_count`,
      ]);
      const row = rows[0];
      if (!row || !row.live || row.member_count === null || row.last_change_seq === null) return null;
      const lastChangeSeq = row.last_change_seq;
      if (row.added) return { changed: true, memberCount: row.member_count, changeSeq: row.change_seq, lastChangeSeq };
      // `member` is read in the statement's snapshot, which the user's lock made fresh.
      if (row.member) return { changed: false, memberCount: row.member_count, changeSeq: null, lastChangeSeq };
      if (row.held >= maxRooms) return ROOM_CAP_REACHED;
      // Not inserted, yet no member in the snapshot and room left: a row inserted concurrently
      // without the user's lock (no code path of this repository does). ON CONFLICT waited for
      // its commit; read the count again in a fresh snapshot.
      const [fresh] = await sql<{ member_count: number; last_change_seq: number }[]>`
        select member_count, last_change_seq from rooms where id = ${roomId} and expires_at > now()`;
      if (!fresh) return null;
      return { changed: false, memberCount: fresh.member_count, changeSeq: null, lastChangeSeq: fresh.last_change_seq };
    },

    /**
     * What a repeat join answers (a socket already in the room, PROTOCOL §2): the room's member
     * count and last change number, and whether `userId` is still a member, one read by key and
     * no write; null when the room is gone or expired.
     */
    async joinFacts(roomId: string, userId: string): Promise<RoomJoinFacts | null> {
      const [row] = await sql<{ member_count: number; last_change_seq: number; is_member: boolean }[]>`
        select member_count, last_change_seq,
               exists (select 1 from room_members where room_id = ${roomId} and user_id = ${userId}::uuid) as is_member
        from rooms where id = ${roomId} and expires_at > now()`;
      return row ? { memberCount: row.member_count, lastChangeSeq: row.last_change_seq, isMember: row.is_member } : null;
    },

    /**
     * Takes the room's row lock before the membership row (the order of `add`): a join and a
     * leave of one user at the same instant queue on the room instead of each holding what the
     * other waits for.
     */
    async remove(roomId: string, userId: string): Promise<MembershipChange> {
      const [row] = await sql<{ removed: boolean; member_count: number | null; change_seq: number | null }[]>`
        with room as (
          select id from rooms where id = ${roomId} for no key update
        ), deleted as (
          delete from room_members where room_id = (select id from room) and user_id = ${userId}
          returning room_id
        ), counted as (
          update rooms set member_count = member_count - 1, last_change_seq = last_change_seq + 1
          where id in (select room_id from deleted)
          returning id, member_count, last_change_seq
        ), recorded as (
          insert into room_events (room_id, change_seq, kind, user_id, member_count)
          select id, last_change_seq, 'user-left', ${userId}, member_count from counted
        )
        select exists (select 1 from deleted) as removed,
               (select member_count from counted) as member_count,
               (select last_change_seq from counted) as change_seq`;
      return { changed: row?.removed ?? false, memberCount: row?.member_count ?? 0, changeSeq: row?.change_seq ?? null };
    },

    async isMember(roomId: string, userId: string): Promise<boolean> {
      const rows = await sql`
        select 1 from room_members where room_id = ${roomId} and user_id = ${userId}`;
      return rows.length > 0;
    },

    /**
     * What a page of the member list needs to know first, in one read: how many members the
     * room has, whether `viewerId` is one of them, and where `afterUserId` (the cursor) stands
     * in the joining order — null when it names nobody in the room.
     */
    async memberListFacts(roomId: string, viewerId: string, afterUserId: string | null) {
      // The count the membership statements keep, and two primary-key probes: reading every
      // member of a large room for them cost each page tens of milliseconds.
      const [row] = await sql<{ total: number; viewer_is_member: boolean; after_joined_at: Date | string | null }[]>`
        select coalesce((select member_count from rooms where id = ${roomId}), 0)::int as total,
               exists (select 1 from room_members where room_id = ${roomId} and user_id = ${viewerId}::uuid) as viewer_is_member,
               (select joined_at from room_members where room_id = ${roomId} and user_id = ${afterUserId}::uuid) as after_joined_at`;
      const after: MemberListPosition | null =
        afterUserId !== null && row!.after_joined_at !== null
          ? { joinedAt: asDate(row!.after_joined_at), userId: afterUserId }
          : null;
      return { total: row!.total, viewerIsMember: row!.viewer_is_member, after };
    },

    /**
     * Up to `limit` members of a room in joining order (ties by user id), with their current
     * nickname; those after the position `after` when given (which need not be a member's any
     * more: the member list's cursor outlives the member it was taken from).
     */
    async listMembers(
      roomId: string,
      page: { limit: number; after: MemberListPosition | null },
    ): Promise<{ userId: string; nickname: string; joinedAt: Date }[]> {
      const after = page.after;
      const rows = await sql<{ user_id: string; nickname: string; joined_at: Date | string }[]>`
        select m.user_id, u.nickname, m.joined_at from room_members m join users u on u.id = m.user_id
        where m.room_id = ${roomId}
          ${after ? sql`and (m.joined_at, m.user_id) > (${after.joinedAt.toISOString()}::timestamptz, ${after.userId}::uuid)` : sql``}
        order by m.joined_at, m.user_id
        limit ${page.limit}`;
      return rows.map((row) => ({ userId: row.user_id, nickname: row.nickname, joinedAt: asDate(row.joined_at) }));
    },

    activeRoomIdsOfUsers,
  };
}

export type MembershipsRepository = ReturnType<typeof createMembershipsRepository>;
