import type { Sql } from 'postgres';
import { uuidArrayLiteral } from './uuid-array.ts';

/**
 * Room occupancy for the change feed's `room-occupied` / `room-vacated` (docs/webhooks.md):
 * whether any member is online, as last recorded.
 */
export function createRoomOccupancyRepository(sql: Sql) {
  return {
    /** Each room's members (user ids), for rooms not yet expired. */
    async membersOf(roomIds: readonly string[]): Promise<Map<string, string[]>> {
      const byRoom = new Map<string, string[]>();
      if (roomIds.length === 0) return byRoom;
      const rows = await sql<{ room_id: string; user_id: string }[]>`
        select m.room_id, m.user_id from unnest(${uuidArrayLiteral(roomIds)}::text::uuid[]) as q(id)
        join room_members m on m.room_id = q.id join rooms r on r.id = m.room_id
        where r.expires_at > now()`;
      for (const roomId of roomIds) byRoom.set(roomId, []);
      for (const row of rows) byRoom.get(row.room_id)?.push(row.user_id);
      return byRoom;
    },

    /**
     * Records the room's occupancy when it differs from the recorded one: `room-occupied` or
     * `room-vacated` in its change feed, numbered under the room row's lock (the update's own;
     * a concurrent recorder re-checks `occupied` on the locked row). Returns the change's
     * number, or null when nothing changed (or the room expired).
     */
    async record(roomId: string, occupied: boolean): Promise<number | null> {
      const [row] = await sql<{ change_seq: number }[]>`
        with changed as (
          update rooms set occupied = ${occupied}, last_change_seq = last_change_seq + 1
          where id = ${roomId} and occupied <> ${occupied} and expires_at > now()
          returning id, last_change_seq
        ), recorded as (
          insert into room_events (room_id, change_seq, kind)
          select id, last_change_seq, ${occupied ? 'room-occupied' : 'room-vacated'} from changed
        )
        select last_change_seq as change_seq from changed`;
      return row?.change_seq ?? null;
    },
  };
}

export type RoomOccupancyRepository = ReturnType<typeof createRoomOccupancyRepository>;
