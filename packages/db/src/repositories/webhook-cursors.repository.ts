import type { Sql } from 'postgres';

/** A room whose change feed is ahead of an endpoint's cursor. */
export interface RoomBehind {
  roomId: string;
  deliveredChangeSeq: number;
  lastChangeSeq: number;
}

/**
 * Webhook delivery cursors (docs/webhooks.md): per endpoint and room, the last `changeSeq` the
 * endpoint acknowledged. A cursor only moves forward (`greatest`), so a late or repeated
 * delivery never moves it back.
 */
export function createWebhookCursorsRepository(sql: Sql) {
  return {
    /**
     * Rooms with changes the endpoint has not acknowledged, least recently changed first. A
     * scan of `rooms` (tombstones included: a room's last changes, `room-expired`, are
     * delivered after it expired): fine at tens of thousands of rooms; beyond that it wants an
     * index on when a room last changed.
     */
    async roomsBehind(endpointId: string, limit: number): Promise<RoomBehind[]> {
      const rows = await sql<{ room_id: string; delivered: number; last_change_seq: number }[]>`
        select r.id as room_id, coalesce(c.delivered_change_seq, 0) as delivered, r.last_change_seq
        from rooms r
        left join webhook_cursors c on c.endpoint_id = ${endpointId} and c.room_id = r.id
        where r.last_change_seq > coalesce(c.delivered_change_seq, 0)
        order by coalesce(c.updated_at, r.created_at)
        limit ${limit}`;
      return rows.map((row) => ({ roomId: row.room_id, deliveredChangeSeq: row.delivered, lastChangeSeq: row.last_change_seq }));
    },

    async delivered(endpointId: string, roomId: string): Promise<number> {
      const [row] = await sql<{ delivered_change_seq: number }[]>`
        select delivered_change_seq from webhook_cursors where endpoint_id = ${endpointId} and room_id = ${roomId}`;
      return row?.delivered_change_seq ?? 0;
    },

    /** Records that the endpoint acknowledged everything up to `changeSeq`; false if the room is gone. */
    async advance(endpointId: string, roomId: string, changeSeq: number): Promise<boolean> {
      try {
        await sql`
          insert into webhook_cursors (endpoint_id, room_id, delivered_change_seq)
          values (${endpointId}, ${roomId}, ${changeSeq})
          on conflict (endpoint_id, room_id) do update
            set delivered_change_seq = greatest(webhook_cursors.delivered_change_seq, excluded.delivered_change_seq),
                updated_at = now()`;
        return true;
      } catch (error) {
        // The room's tombstone was removed meanwhile: nothing left to deliver for it.
        if ((error as { code?: string }).code === '23503') return false;
        throw error;
      }
    },
  };
}

export type WebhookCursorsRepository = ReturnType<typeof createWebhookCursorsRepository>;
