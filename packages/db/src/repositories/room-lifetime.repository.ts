import type { Sql } from 'postgres';
import { asDate } from './messages.repository.ts';

export type LifetimeChange =
  | { status: 'changed'; expiresAt: Date; previousExpiresAt: Date }
  | { status: 'room-missing' }
  /** Already expired: an expired room is never brought back (its day may be gone). */
  | { status: 'room-expired' };

/**
 * Changing when a live room expires: closing it now, or extending its life (server API).
 *
 * `messages` is partitioned by the messages' `expires_at` (docs/partitions.md), which must equal
 * the room's: reads prune to the room's day, and a day is dropped once every room *of that
 * day* is expired. So the room's messages move with it: their `expires_at` is updated in the
 * same transaction, and Postgres moves each row into the partition of the new day
 * (messages_default when that day has none yet; the partition job moves them on). Without that
 * an extended room would keep its messages in the old day, which is dropped while the room
 * still lives. All under the room row's lock, taken first, as the message batch takes it: no
 * send interleaves with the move. (A cascading foreign key did this until migration 0005; its
 * check cost every stored message a lookup.)
 */
export function createRoomLifetimeRepository(sql: Sql) {
  return {
    /** Sets the room's expiry to `expiresAt`, or to the database's `now()` when `'now'`. */
    async setExpiry(roomId: string, expiresAt: Date | 'now'): Promise<LifetimeChange> {
      return sql.begin(async (tx) => {
        const [room] = await tx<{ expires_at: Date | string; live: boolean; target: Date | string }[]>`
          select expires_at, expires_at > now() as live,
                 ${expiresAt === 'now' ? sql`date_trunc('milliseconds', now())` : sql`${expiresAt.toISOString()}::timestamptz`} as target
          from rooms where id = ${roomId} for update`;
        if (!room) return { status: 'room-missing' } as const;
        if (!room.live) return { status: 'room-expired' } as const;
        const previous = asDate(room.expires_at);
        const target = asDate(room.target);
        // The messages follow, matched by the room's current expiry (their partition).
        await tx`
          update messages set expires_at = ${target.toISOString()}::timestamptz
          where room_id = ${roomId} and expires_at = (select expires_at from rooms where id = ${roomId})`;
        // A room given more life may be warned again before its new expiry.
        await tx`
          update rooms set expires_at = ${target.toISOString()}::timestamptz,
            expiring_notified_at = case when ${target.toISOString()}::timestamptz > expires_at then null else expiring_notified_at end
          where id = ${roomId}`;
        return { status: 'changed', expiresAt: target, previousExpiresAt: previous } as const;
      });
    },
  };
}

export type RoomLifetimeRepository = ReturnType<typeof createRoomLifetimeRepository>;
