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
 * still the old one). The old expiry joins `earlier_expiries`, where the room's messages stored
 * until now still are (their partition key); the target leaves it, should the room go back to an
 * expiry it had, since new messages are stored under `expires_at` and never under a listed one.
 */
async function moveRoom(tx: TransactionSql, roomId: string, target: Date): Promise<number> {
  const [row] = await tx<{ change_seq: number }[]>`
    with moved as (
      update rooms set expires_at = ${target.toISOString()}::timestamptz,
        earlier_expiries = array_remove(array_append(earlier_expiries, expires_at), ${target.toISOString()}::timestamptz),
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
 * `messages` is partitioned by the messages' `expires_at` (docs/partitions.md), and a room's
 * messages are stored under the expiry it had when each was sent. The change does not touch them:
 * it lists the old expiry in `earlier_expiries`, reads look there too, and no day a room not yet
 * swept lists is dropped. The partition job then moves them to the room's expiry in short
 * batches (or deletes them, once the room is expired: a closed room's), so the call and the
 * room's lock take the same time whatever the number of messages; until migration 0013 they were
 * moved here, in one statement under the room's lock (1.4 s for 200,000 messages, past the 5 s
 * statement timeout at 1,000,000).
 *
 * The change is a change of the room's feed (PROTOCOL §16), `room-lifetime-changed`, numbered and
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
        // Not a change: no feed entry, nothing listed.
        if (target.getTime() === previous.getTime()) return { status: 'unchanged', expiresAt: target } as const;
        const changeSeq = await moveRoom(tx, roomId, target);
        return { status: 'changed', expiresAt: target, changeSeq } as const;
      });
    },
  };
}

export type RoomLifetimeRepository = ReturnType<typeof createRoomLifetimeRepository>;
