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
     * Rooms with changes the endpoint has not acknowledged, least recently delivered first. Only
     * rooms flagged `webhook_pending` are looked at, through their partial index: the poll costs
     * what is undelivered, not every room and tombstone (migration 0004).
     */
    async roomsBehind(endpointId: string, limit: number): Promise<RoomBehind[]> {
      const rows = await sql<{ room_id: string; delivered: number; last_change_seq: number }[]>`
        select r.id as room_id, coalesce(c.delivered_change_seq, 0) as delivered, r.last_change_seq
        from rooms r
        left join webhook_cursors c on c.endpoint_id = ${endpointId} and c.room_id = r.id
        where r.webhook_pending and r.last_change_seq > coalesce(c.delivered_change_seq, 0)
        order by coalesce(c.updated_at, r.created_at)
        limit ${limit}`;
      return rows.map((row) => ({ roomId: row.room_id, deliveredChangeSeq: row.delivered, lastChangeSeq: row.last_change_seq }));
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
