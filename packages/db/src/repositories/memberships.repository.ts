import type { Sql } from 'postgres';
import { uuidArrayLiteral } from './uuid-array.ts';

export interface MembershipChange {
  /** False when nothing changed (already a member / not a member). */
  changed: boolean;
  memberCount: number;
  /** The change's number in the room's feed (user-joined / user-left); null when unchanged. */
  changeSeq: number | null;
}

/**
 * Membership and the room's `member_count` change in one statement, so the counter can never
 * drift from the rows. The same statement numbers the change in the room's feed
 * (`last_change_seq`, under the room row's lock taken by that update) and writes its
 * `room_events` row: no number is taken unless the membership really changed. Each is a single round trip and an implicit transaction (an `add` that
 * finds the member already there reads the count once more, see below).
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

  return {
    /** Adds the member unless the room is gone or expired (then `null`). */
    async add(roomId: string, userId: string): Promise<MembershipChange | null> {
      const [row] = await sql<{ added: boolean; member_count: number | null; change_seq: number | null }[]>`
        with inserted as (
          insert into room_members (room_id, user_id)
          select ${roomId}, ${userId}
          where exists (select 1 from rooms where id = ${roomId} and expires_at > now())
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
               (select last_change_seq from counted) as change_seq,
               coalesce(
                 (select member_count from counted),
                 (select member_count from rooms where id = ${roomId} and expires_at > now())
               ) as member_count`;
      if (!row || row.member_count === null) return null;
      if (!row.added) {
        // Already a member. If that membership was inserted concurrently (the same user's other
        // device), ON CONFLICT waited for its commit but this statement's snapshot predates it,
        // so the count above can miss it: read it again in a fresh snapshot.
        const [fresh] = await sql<{ member_count: number }[]>`
          select member_count from rooms where id = ${roomId} and expires_at > now()`;
        if (!fresh) return null;
        return { changed: false, memberCount: fresh.member_count, changeSeq: null };
      }
      return { changed: row.added, memberCount: row.member_count, changeSeq: row.change_seq };
    },

    async remove(roomId: string, userId: string): Promise<MembershipChange> {
      const [row] = await sql<{ removed: boolean; member_count: number | null; change_seq: number | null }[]>`
        with deleted as (
          delete from room_members where room_id = ${roomId} and user_id = ${userId}
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
     * room has, whether `viewerId` is one of them, and whether `afterUserId` (the cursor) is.
     */
    async memberListFacts(roomId: string, viewerId: string, afterUserId: string | null) {
      // The count the membership statements keep, and two primary-key probes: reading every
      // member of a large room for them cost each page tens of milliseconds.
      const [row] = await sql<{ total: number; viewer_is_member: boolean; after_is_member: boolean }[]>`
        select coalesce((select member_count from rooms where id = ${roomId}), 0)::int as total,
               exists (select 1 from room_members where room_id = ${roomId} and user_id = ${viewerId}::uuid) as viewer_is_member,
               exists (select 1 from room_members where room_id = ${roomId} and user_id = ${afterUserId}::uuid) as after_is_member`;
      return { total: row!.total, viewerIsMember: row!.viewer_is_member, afterIsMember: row!.after_is_member };
    },

    /**
     * Up to `limit` members of a room in joining order (ties by user id), with their current
     * nickname; after the member `afterUserId` when given (a cursor that must name a member).
     */
    async listMembers(
      roomId: string,
      page: { limit: number; afterUserId: string | null },
    ): Promise<{ userId: string; nickname: string; joinedAt: Date }[]> {
      const rows = await sql<{ user_id: string; nickname: string; joined_at: Date | string }[]>`
        select m.user_id, u.nickname, m.joined_at from room_members m join users u on u.id = m.user_id
        where m.room_id = ${roomId}
          and (${page.afterUserId}::uuid is null or (m.joined_at, m.user_id) > (
            select a.joined_at, a.user_id from room_members a where a.room_id = ${roomId} and a.user_id = ${page.afterUserId}::uuid))
        order by m.joined_at, m.user_id
        limit ${page.limit}`;
      return rows.map((row) => ({
        userId: row.user_id,
        nickname: row.nickname,
        joinedAt: row.joined_at instanceof Date ? row.joined_at : new Date(row.joined_at),
      }));
    },

    activeRoomIdsOfUsers,
  };
}

export type MembershipsRepository = ReturnType<typeof createMembershipsRepository>;
