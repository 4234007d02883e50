import type { Sql, TransactionSql } from 'postgres';
import { asDate } from './messages.repository.ts';

export type LifetimeChange =
  /** `changeSeq`: the `room-lifetime-changed` recorded in the room's change feed. */
  | { status: 'changed'; expiresAt: Date; changeSeq: number }
  /** The room already expires at that time: nothing moved, nothing recorded. */
  | { status: 'unchanged'; expiresAt: Date }
  | { status: 'room-missing' }
  /**
   * Already expired when the room's lock was taken (by the clock then, not when the call began),
   * or already swept (`expired_at`, or its `room-expired` recorded): an expired room is never
   * brought back (its day may be gone, its members purged).
   */
  | { status: 'room-expired' };

/**
 * Sets the locked room's expiry and records `room-lifetime-changed` with the next change number,
 * in one statement (as memberships.repository.ts records a join); returns that number. A room
 * given more life may be warned again before its new expiry (`expires_at` in the SET list is
 * still the old one).
 */
async function moveRoom(tx: TransactionSql, roomId: string, target: Date): Promise<number> {
  const [row] = await tx<{ change_seq: number }[]>`
    with moved as (
      update rooms set expires_at = ${target.toISOString()}::timestamptz,
        expiring_notified_at = case when ${target.toISOString()}::timestamptz > expires_at then null else expiring_notified_at end,
        last_change_seq = last_change_seq + 1
      where id = ${roomId}
      returning id, expires_at, last_change_seq
    ), recorded as (
      insert into room_events (room_id, change_seq, kind, expires_at)
      select id, last_change_seq, 'room-lifetime-changed', expires_at from moved
    )
    select last_change_seq as change_seq from moved`;
  return row!.change_seq;
}

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
 *
 * The move is a change of the room's feed (PROTOCOL §16), `room-lifetime-changed`, numbered and
 * recorded in the same transaction as every other room event, so members and webhook receivers
 * learn the new expiry in order with the room's other changes.
 */
export function createRoomLifetimeRepository(sql: Sql) {
  return {
    /** Sets the room's expiry to `expiresAt`, or when `'now'` to the database's clock once the room is locked. */
    async setExpiry(roomId: string, expiresAt: Date | 'now'): Promise<LifetimeChange> {
      return sql.begin(async (tx) => {
        const [locked] = await tx`select id from rooms where id = ${roomId} for update`;
        if (!locked) return { status: 'room-missing' } as const;
        // Live or not is decided only now that the lock is held, by the clock: `now()` is when
        // the transaction began, and the wait for the lock (a send batch, another move, the
        // sweep's `room-expired`) may have crossed the room's expiry, after which the sweep may
        // already have picked it. A room the sweep has reached (`expired_at`, or `room-expired`
        // recorded) is refused whatever its `expires_at` says. A close ('now') ends the room at
        // that same instant.
        const [room] = await tx<{ expires_at: Date | string; live: boolean; target: Date | string }[]>`
          with clock as materialized (select clock_timestamp() as at)
          select r.expires_at,
                 r.expires_at > clock.at and r.expired_at is null
                   and not exists (select 1 from room_events e where e.room_id = r.id and e.kind = 'room-expired') as live,
                 ${expiresAt === 'now' ? sql`date_trunc('milliseconds', clock.at)` : sql`${expiresAt.toISOString()}::timestamptz`} as target
          from rooms r, clock where r.id = ${roomId}`;
        if (!room?.live) return { status: 'room-expired' } as const;
        const previous = asDate(room.expires_at);
        const target = asDate(room.target);
        // Not a change: no feed entry, and the messages already sit in the target's partition.
        if (target.getTime() === previous.getTime()) return { status: 'unchanged', expiresAt: target } as const;
        // The messages follow, matched by the room's current expiry (their partition).
        await tx`
          update messages set expires_at = ${target.toISOString()}::timestamptz
          where room_id = ${roomId} and expires_at = (select expires_at from rooms where id = ${roomId})`;
        const changeSeq = await moveRoom(tx, roomId, target);
        return { status: 'changed', expiresAt: target, changeSeq } as const;
      });
    },
  };
}

export type RoomLifetimeRepository = ReturnType<typeof createRoomLifetimeRepository>;
