import type { Sql } from 'postgres';
import { asDate } from './messages.repository.ts';

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
    /** Rooms inside the warning window that were not announced yet. */
    async dueForWarning(windowMs: number, limit: number): Promise<ExpiringRoom[]> {
      const rows = await sql<{ id: string; expires_at: Date | string }[]>`
        select id, expires_at from rooms
        where expired_at is null and expiring_notified_at is null
          and expires_at > now() and expires_at <= now() + ${windowMs}::bigint * interval '1 millisecond'
        order by expires_at limit ${limit}`;
      return rows.map((row) => ({ id: row.id, expiresAt: asDate(row.expires_at) }));
    },

    async markWarned(roomIds: string[]): Promise<void> {
      if (roomIds.length === 0) return;
      await sql`update rooms set expiring_notified_at = now() where id in ${sql(roomIds)}`;
    },

    /** Rooms past `expires_at` whose rows are not purged yet, oldest first. */
    async dueForExpiry(limit: number): Promise<ExpiringRoom[]> {
      const rows = await sql<{ id: string; expires_at: Date | string }[]>`
        select id, expires_at from rooms
        where expired_at is null and expires_at <= now()
        order by expires_at limit ${limit}`;
      return rows.map((row) => ({ id: row.id, expiresAt: asDate(row.expires_at) }));
    },

    async purgeMembers(roomId: string, batch: number): Promise<number> {
      const result = await sql`
        delete from room_members where (room_id, user_id) in (
          select room_id, user_id from room_members where room_id = ${roomId}
          limit ${batch} for update skip locked)`;
      return result.count;
    },

    /**
     * The last step: the room becomes a tombstone — only once no membership row is left
     * (another sweep may still hold some in an open batch, or a killed one may have rolled its
     * batch back). False if rows remain or another sweep got there first: the room stays due,
     * and the next sweep finishes it. Its messages are not touched: they stay in their day's
     * partition, unreadable (every read checks the room's expiry), until the partition job drops
     * the whole day, which it does only once every room of that day is marked here.
     */
    async markExpired(roomId: string): Promise<boolean> {
      const result = await sql`
        update rooms set expired_at = now(), member_count = 0
        where id = ${roomId} and expired_at is null
          and not exists (select 1 from room_members where room_id = ${roomId})`;
      return result.count > 0;
    },

    /**
     * Removes tombstones older than `keepMs`; returns how many. A room's messages go with it
     * (ON DELETE CASCADE) if its day partition is still there, which happens only when `keepMs`
     * is shorter than the rest of the room's expiry day (the default keeps tombstones 7 days).
     */
    async deleteTombstones(keepMs: number, limit: number): Promise<number> {
      const result = await sql`
        delete from rooms where id in (
          select id from rooms
          where expired_at is not null and expired_at < now() - ${keepMs}::bigint * interval '1 millisecond'
          limit ${limit})`;
      return result.count;
    },
  };
}

export type RoomExpiryRepository = ReturnType<typeof createRoomExpiryRepository>;
