import type { Sql } from 'postgres';
import { integerArrayLiteral, uuidArrayLiteral } from './uuid-array.ts';

/** An endpoint's cursor in a room moved to the last change it acknowledged (or skipped). */
export interface CursorMove {
  roomId: string;
  changeSeq: number;
}

/**
 * Webhook delivery cursors (docs/webhooks.md): per endpoint and room, the last `changeSeq` the
 * endpoint acknowledged. A cursor only moves forward (`greatest`), so a late or repeated
 * delivery never moves it back.
 */
export function createWebhookCursorsRepository(sql: Sql) {
  return {
    /**
     * The delivery lanes holding a room with changes the endpoint has not acknowledged. A room's
     * lane is the last byte of its id (random in a UUIDv7) modulo 16 (docs/webhooks.md); each
     * lane has at most one delivery job at a time, so 16 bounds an endpoint's POSTs in flight.
     * The 16 is written out, here and in `RoomChangesRepository.backlog`, because migration 0006
     * indexes that very expression (a bound parameter would not match it); it is fixed, too,
     * because two lane counts in one cluster could deliver a room from two lanes at once. Only
     * rooms flagged `webhook_pending` are looked at, through their partial index (migration 0004).
     */
    async lanesBehind(endpointId: string): Promise<number[]> {
      // Per lane, the first room behind, through the lane index (`limit 1` in a lateral keeps
      // it a probe per lane): 0.27 ms at 10,000 pending rooms, where a distinct over all of
      // them, read by a hash join, took 4.1 ms.
      const rows = await sql<{ lane: number }[]>`
        select l.lane from generate_series(0, 15) as l(lane)
        cross join lateral (
          select 1 from rooms r
          left join webhook_cursors c on c.endpoint_id = ${endpointId} and c.room_id = r.id
          where r.webhook_pending and get_byte(uuid_send(r.id), 15) % 16 = l.lane
            and r.last_change_seq > coalesce(c.delivered_change_seq, 0)
          limit 1) behind
        order by l.lane`;
      return rows.map((row) => row.lane);
    },

    /**
     * Records the configured endpoints. One not seen before (new, or renamed) starts from the
     * beginning of every room (docs/webhooks.md): every room with changes is flagged pending
     * again, one scan of rooms when the configuration changes, never per poll. Returns how many
     * rooms that flagged.
     */
    async syncEndpoints(endpointIds: readonly string[]): Promise<number> {
      const ids = [...endpointIds];
      const result = await sql`
        with gone as (delete from webhook_endpoints where id <> all(${ids}::text[])),
        added as (
          insert into webhook_endpoints (id) select unnest(${ids}::text[])
          on conflict (id) do nothing returning id)
        update rooms set webhook_pending = true
        where exists (select 1 from added) and not webhook_pending and last_change_seq > 0`;
      return result.count;
    },

    /**
     * Lowers `webhook_pending` on up to `limit` rooms every configured endpoint has acknowledged
     * through their last change. Rooms locked by a change in flight are skipped (never waited
     * for, so this cannot deadlock with a send); a locked row is re-checked at its newest version
     * before it is lowered, and a change after that raises the flag again through the trigger.
     */
    async settleDelivered(endpointIds: readonly string[], limit: number): Promise<number> {
      const ids = [...endpointIds];
      const result = await sql`
        update rooms r set webhook_pending = false
        from (
          select p.id from rooms p
          where p.webhook_pending
            and not exists (
              select 1 from unnest(${ids}::text[]) e(id)
              left join webhook_cursors c on c.endpoint_id = e.id and c.room_id = p.id
              where coalesce(c.delivered_change_seq, 0) < p.last_change_seq)
          order by p.id limit ${limit}
          for update of p skip locked) done
        where r.id = done.id`;
      return result.count;
    },

    /**
     * Records that the endpoint acknowledged everything up to each move's `changeSeq`, in one
     * statement. A room whose tombstone was removed meanwhile is left out (nothing left to
     * deliver there; one removed between that check and the insert fails the statement, and the
     * job's retry leaves it out). The check is a scalar sub-select, a lookup by key per room: as
     * `exists`, it became a join that read all of `rooms` below some thousands of rooms. New
     * cursors are written in room id order: their foreign key checks lock the rooms in the order
     * a send batch locks them, so the two cannot deadlock.
     */
    async advance(endpointId: string, moves: readonly CursorMove[]): Promise<void> {
      // One move per room (the last wins), so the two arrays stay parallel.
      const byRoom = new Map(moves.map((move) => [move.roomId, move.changeSeq]));
      if (byRoom.size === 0) return;
      await sql`
        insert into webhook_cursors (endpoint_id, room_id, delivered_change_seq)
        select ${endpointId}, m.room_id, m.change_seq
        from unnest(${uuidArrayLiteral([...byRoom.keys()])}::text::uuid[], ${integerArrayLiteral([...byRoom.values()])}::text::int8[]) as m(room_id, change_seq)
        where (select true from rooms r where r.id = m.room_id)
        order by m.room_id
        on conflict (endpoint_id, room_id) do update
          set delivered_change_seq = greatest(webhook_cursors.delivered_change_seq, excluded.delivered_change_seq),
              updated_at = now()`;
    },
  };
}

export type WebhookCursorsRepository = ReturnType<typeof createWebhookCursorsRepository>;
