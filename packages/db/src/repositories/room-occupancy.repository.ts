import type { Sql } from 'postgres';
import { uuidArrayLiteral } from './uuid-array.ts';

/**
 * Room occupancy for the change feed's `room-occupied` / `room-vacated` (docs/webhooks.md):
 * whether any member is online, as last recorded.
 */
export function createRoomOccupancyRepository(sql: Sql) {
  return {
    /**
     * Each room's members (user ids), for rooms not yet expired. Each room is a lookup of its
     * own (see `activeRoomIdsOfUsers` in memberships.repository.ts for why).
     */
    async membersOf(roomIds: readonly string[]): Promise<Map<string, string[]>> {
      const byRoom = new Map<string, string[]>();
      if (roomIds.length === 0) return byRoom;
      const rows = await sql<{ room_id: string; user_id: string }[]>`
        select q.id as room_id, m.user_id from unnest(${uuidArrayLiteral(roomIds)}::text::uuid[]) as q(id)
        cross join lateral (
          select m.user_id from rooms r join room_members m on m.room_id = r.id
          where r.id = q.id and r.expires_at > now()
          offset 0) m`;
      for (const roomId of roomIds) byRoom.set(roomId, []);
      for (const row of rows) byRoom.get(row.room_id)?.push(row.user_id);
      return byRoom;
    },

    /**
     * Records each room's occupancy where it differs from the recorded one: `room-occupied` or
     * `room-vacated` in its change feed, numbered under the room row's lock. One statement for
     * all of them (a mass reconnect marks thousands of rooms at once; a statement per room was
     * one round trip each). The rooms that differ are locked in id order first, as the group
     * commit locks them, so the two never deadlock; a room changed meanwhile by a concurrent
     * recorder is re-checked on its locked row and skipped if it now agrees. Returns the rooms
     * that changed with their change number (expired rooms never change: judged by the clock on
     * the locked row, so a room the server API closed while this waited is not changed after it).
     *
     * Each room is a lookup by key, locked and then updated: as joins against `wanted` (a
     * `json_to_recordset`, planned as 100 rows) both read all of `rooms` on every run, two
     * sequential scans per occupancy run that grew with every room of the cluster (auto_explain
     * in `bench:probe --pods 4 --rooms 1500 --webhook`: 2.3 ms a run). The update names its
     * rooms by an array (an init plan, probed through the primary key) and flips `occupied`:
     * every locked room differs from what is wanted, and its lock holds it so until the update.
     */
    async recordMany(wanted: readonly { roomId: string; occupied: boolean }[]): Promise<{ roomId: string; occupied: boolean; changeSeq: number }[]> {
      if (wanted.length === 0) return [];
      const input = JSON.stringify(wanted.map((room) => ({ id: room.roomId, occupied: room.occupied })));
      const rows = await sql<{ room_id: string; occupied: boolean; change_seq: number }[]>`
        with locked as (
          select r.id
          from (select * from json_to_recordset(${input}::text::json) as w(id uuid, occupied boolean) order by id) w
          cross join lateral (
            select id from rooms
            where rooms.id = w.id and rooms.occupied <> w.occupied and rooms.expires_at > clock_timestamp()
            for update) r
        ), changed as (
          update rooms set occupied = not rooms.occupied, last_change_seq = rooms.last_change_seq + 1
          where rooms.id = any(array(select id from locked))
          returning rooms.id, rooms.occupied, rooms.last_change_seq
        ), recorded as (
          insert into room_events (room_id, change_seq, kind)
          select id, last_change_seq, case when occupied then 'room-occupied' else 'room-vacated' end from changed
        )
        select id as room_id, occupied, last_change_seq as change_seq from changed`;
      return rows.map((row) => ({ roomId: row.room_id, occupied: row.occupied, changeSeq: row.change_seq }));
    },
  };
}

export type RoomOccupancyRepository = ReturnType<typeof createRoomOccupancyRepository>;
