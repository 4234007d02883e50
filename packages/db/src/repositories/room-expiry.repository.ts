import type { Sql } from 'postgres';
import { asDate } from './messages.repository.ts';
import { storedExpiries } from './room-expiries.ts';

export interface ExpiringRoom {
  id: string;
  expiresAt: Date;
}

/**
 * The queries of the expiry sweep. Every step is idempotent and bounded: running it twice, late
 * or from two workers at once converges on the same state, and a sweep killed midway leaves
 * rows that the next one finishes (reads already refuse them: `expires_at > now()`).
 */
export function createRoomExpiryRepository(sql: Sql) {
  return {
    /**
     * Rooms inside the warning window whose `room-expiring` was not announced yet, except those
     * whose record is younger than `announcedWithinMs`: its recorder is announcing it.
     */
    async dueForWarning(windowMs: number, announcedWithinMs: number, limit: number): Promise<ExpiringRoom[]> {
      const rows = await sql<{ id: string; expires_at: Date | string }[]>`
        select r.id, r.expires_at from rooms r
        where r.expired_at is null and r.expiring_notified_at is null
          and r.expires_at > now() and r.expires_at <= now() + ${windowMs}::bigint * interval '1 millisecond'
          and not exists (
            select 1 from room_events e
            where e.room_id = r.id and e.kind = 'room-expiring' and e.expires_at = r.expires_at
              and e.created_at > now() - ${announcedWithinMs}::bigint * interval '1 millisecond')
        order by r.expires_at limit ${limit}`;
      return rows.map((row) => ({ id: row.id, expiresAt: asDate(row.expires_at) }));
    },

    /**
     * What the sweep announces as `room-expiring`: each room's record in its change feed, made
     * now when the room has none for its current expiry, else the one a sweep made earlier and
     * never announced (it died, or the bus refused it) once that record is `announcedWithinMs`
     * old — with the same number, so the feed holds one `room-expiring` per expiry. A room with a
     * younger unannounced record is not returned: its recorder is at it. `expiring_notified_at`
     * is only set by `markExpiringAnnounced`, once the bus has taken the announcement.
     *
     * The rooms are locked first, in id order as the message batch locks them, and only then are
     * their records read, by a statement of its own: it sees a record another sweep committed
     * while this one waited for the lock (one statement would read the feed as of its start and
     * record the room twice). Live is judged by the clock on the locked row (`clock_timestamp()`,
     * not `now()`): a room the server API closed while this waited for its lock is not warned
     * after its `room-lifetime-changed`.
     */
    async recordExpiring(roomIds: string[], announcedWithinMs: number): Promise<(ExpiringRoom & { changeSeq: number })[]> {
      if (roomIds.length === 0) return [];
      return sql.begin(async (tx) => {
        const locked = await tx<{ id: string }[]>`
          select id from rooms
          where id in ${tx(roomIds)} and expiring_notified_at is null and expired_at is null and expires_at > clock_timestamp()
          order by id for update`;
        if (locked.length === 0) return [];
        const rows = await tx<{ id: string; expires_at: Date | string; change_seq: number }[]>`
          with existing as (
            select distinct on (e.room_id) e.room_id, e.change_seq,
                   e.created_at <= now() - ${announcedWithinMs}::bigint * interval '1 millisecond' as stale
            from room_events e join rooms r on r.id = e.room_id
            where e.room_id in ${tx(locked.map((room) => room.id))} and e.kind = 'room-expiring' and e.expires_at = r.expires_at
            order by e.room_id, e.change_seq desc
          ), warned as (
            update rooms set last_change_seq = last_change_seq + 1
            where id in ${tx(locked.map((room) => room.id))} and id not in (select room_id from existing)
            returning id, expires_at, last_change_seq
          ), recorded as (
            insert into room_events (room_id, change_seq, kind, expires_at)
            select id, last_change_seq, 'room-expiring', expires_at from warned
          )
          select id, expires_at, last_change_seq as change_seq from warned
          union all
          select r.id, r.expires_at, x.change_seq from existing x join rooms r on r.id = x.room_id where x.stale
          order by id`;
        return rows.map((row) => ({ id: row.id, expiresAt: asDate(row.expires_at), changeSeq: Number(row.change_seq) }));
      });
    },

    /**
     * The bus took these rooms' `room-expiring`: no sweep announces it again. Only for the expiry
     * announced: a room the server API extended meanwhile is warned again before its new one.
     */
    async markExpiringAnnounced(rooms: ExpiringRoom[]): Promise<void> {
      if (rooms.length === 0) return;
      await sql`
        update rooms r set expiring_notified_at = now()
        from jsonb_to_recordset(${JSON.stringify(rooms.map((room) => ({ id: room.id, expires_at: room.expiresAt.toISOString() })))}::jsonb)
          as a(id uuid, expires_at timestamptz)
        where r.id = a.id and r.expires_at = a.expires_at and r.expiring_notified_at is null`;
    },

    /**
     * Records `room-expired` in the room's change feed once (a sweep that repeats the room gets
     * the same number back); null if the room is gone or not expired. What this sweep does next:
     * - `announce`: it tells the room and makes its sockets leave, then `markAnnounced`. The
     *   sweep that recorded it, or any sweep once an unannounced record is older than
     *   `announcedWithinMs` (its recorder died, or its publish failed, before the announcement
     *   was taken: it announces right after this commit).
     * - `purge`: announced already; it helps empty the room and mark it.
     * - `wait`: recorded a moment ago and not announced yet: a sweep is running beside the
     *   recorder (two worker replicas) and leaves the room alone. Its announcement would repeat
     *   the recorder's, its leave could overtake it, and its purge and mark would end the room
     *   before the recorder knows the announcement went out.
     */
    async recordExpired(roomId: string, announcedWithinMs: number): Promise<{ changeSeq: number; next: 'announce' | 'purge' | 'wait' } | null> {
      return sql.begin(async (tx) => {
        const [room] = await tx<{ id: string; announced: boolean }[]>`
          select id, expiry_announced_at is not null as announced
          from rooms where id = ${roomId} and expires_at <= now() for update`;
        if (!room) return null;
        const [existing] = await tx<{ change_seq: number; stale: boolean }[]>`
          select change_seq, created_at <= now() - ${announcedWithinMs}::bigint * interval '1 millisecond' as stale
          from room_events where room_id = ${roomId} and kind = 'room-expired'
          order by change_seq desc limit 1`;
        if (existing) {
          const next = room.announced ? 'purge' : existing.stale ? 'announce' : 'wait';
          return { changeSeq: Number(existing.change_seq), next };
        }
        const [row] = await tx<{ change_seq: number }[]>`
          with bumped as (
            update rooms set last_change_seq = last_change_seq + 1 where id = ${roomId}
            returning id, last_change_seq
          ), recorded as (
            insert into room_events (room_id, change_seq, kind)
            select id, last_change_seq, 'room-expired' from bumped
          )
          select last_change_seq as change_seq from bumped`;
        return row ? { changeSeq: Number(row.change_seq), next: 'announce' as const } : null;
      });
    },

    /** The bus took the room's `room-expired`: from now on the room may be purged and marked. */
    async markAnnounced(roomId: string): Promise<void> {
      await sql`update rooms set expiry_announced_at = now() where id = ${roomId} and expiry_announced_at is null`;
    },

    /** Rooms past `expires_at` whose rows are not purged yet, oldest first. */
    async dueForExpiry(limit: number): Promise<ExpiringRoom[]> {
      const rows = await sql<{ id: string; expires_at: Date | string }[]>`
        select id, expires_at from rooms
        where expired_at is null and expires_at <= now()
        order by expires_at limit ${limit}`;
      return rows.map((row) => ({ id: row.id, expiresAt: asDate(row.expires_at) }));
    },

    /**
     * Deletes up to `batch` of the room's memberships, only while the room is expired: the
     * room's row is share-locked and its `expires_at <= now()` checked in the same statement,
     * before any membership is read (the scalar subquery is evaluated first, as the key of the
     * membership scan). An extend of the room (room-lifetime.repository.ts) holds the row
     * `for update`: this waits for it, and once it committed a later expiry Postgres re-checks
     * the condition on the new row and nothing is deleted.
     */
    async purgeMembers(roomId: string, batch: number): Promise<number> {
      const result = await sql`
        delete from room_members where (room_id, user_id) in (
          select room_id, user_id from room_members
          where room_id = (select id from rooms where id = ${roomId} and expires_at <= now() for share)
          limit ${batch} for update skip locked)`;
      return result.count;
    },

    /**
     * The last step: the room becomes a tombstone — only once its `room-expired` was announced
     * and no membership row is left
     * (another sweep may still hold some in an open batch, or a killed one may have rolled its
     * batch back). False if rows remain or another sweep got there first: the room stays due,
     * and the next sweep finishes it. Its messages are not touched: they stay in their day's
     * partition, unreadable (every read checks the room's expiry), until the partition job drops
     * the whole day, which it does only once every room of that day is marked here. Only a room
     * that is expired (`expires_at <= now()`, re-checked by the update on the locked row, so an
     * extend that commits a later expiry while this waits for the row leaves the room live).
     */
    async markExpired(roomId: string): Promise<boolean> {
      const result = await sql`
        update rooms set expired_at = now(), member_count = 0
        where id = ${roomId} and expired_at is null and expires_at <= now() and expiry_announced_at is not null
          and not exists (select 1 from room_members where room_id = ${roomId})`;
      return result.count > 0;
    },

    /**
     * Removes tombstones older than `keepMs`; returns how many. A room's messages go with it in
     * the same statement if its day partition is still there, which happens only when `keepMs`
     * is shorter than the rest of the room's expiry day (the default keeps tombstones 7 days),
     * or the partition job has not yet deleted what an earlier expiry of the room still holds;
     * the delete looks under each expiry the room's messages are stored under.
     */
    async deleteTombstones(keepMs: number, limit: number): Promise<number> {
      const [row] = await sql<{ count: number }[]>`
        with gone as (
          delete from rooms where id in (
            select id from rooms
            where expired_at is not null and expired_at < now() - ${keepMs}::bigint * interval '1 millisecond'
            limit ${limit})
          returning id, expires_at, earlier_expiries
        ), purged as (
          delete from messages m using gone g, ${storedExpiries(sql, 'g')} as d(expires_at)
          where m.room_id = g.id and m.expires_at = d.expires_at
        )
        select count(*)::int as count from gone`;
      return row?.count ?? 0;
    },
  };
}

export type RoomExpiryRepository = ReturnType<typeof createRoomExpiryRepository>;
