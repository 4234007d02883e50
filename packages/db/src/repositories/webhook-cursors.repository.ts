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
/** Sorts before every id (UUIDv7 and v4 alike): "from nothing" is every room. */
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

/**
 * How long an endpoint's record outlives the last worker process configured with it
 * (`syncEndpoints`; docs/webhooks.md, "Changing the endpoints"). Replicas configured differently run side by side
 * during a rolling update, each naming its own endpoints on each of its dispatch runs (the
 * dispatch runs one at a time across replicas, taken by whichever is free), and none deletes an
 * endpoint another named within this time: so it must be longer than any replica goes without a
 * dispatch run while it is up, and it is how long a removed endpoint still holds its rooms
 * pending (the settle pass waits for every recorded endpoint) once the last replica naming it has
 * stopped. Five minutes: a few hundred polls.
 */
export const WEBHOOK_ENDPOINT_GRACE_MS = 5 * 60_000;

/**
 * The advisory lock between the settle pass (shared) and the recording of an endpoint
 * (exclusive): see `syncEndpoints`. Any constant no other lock of the schema uses (the
 * messages_default move holds 727275).
 */
const ENDPOINTS_LOCK = 727276;

/** `fn` in a transaction of its own, or in the caller's when `sql` is one already (it has no `begin`). */
function inTransaction<T>(sql: Sql, fn: (tx: Sql) => Promise<T>): Promise<T> {
  if (typeof (sql as Partial<Sql>).begin !== 'function') return fn(sql);
  return sql.begin((tx) => fn(tx as unknown as Sql)) as Promise<T>;
}

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
     * Records the endpoints this process is configured with, and forgets those no process has
     * named for `graceMs` (docs/webhooks.md, "Changing the endpoints"). Worker replicas may be
     * configured differently for a while (a rolling update that changes WEBHOOK_ENDPOINTS), so
     * one never deletes an endpoint merely because it does not know it: each refreshes its own
     * endpoints' `seen_at` (a heartbeat, at most every `graceMs` / 10), and a row goes only once
     * its `seen_at` is older than `graceMs` (the database's clock: the replicas' own do not
     * matter). A row that stays keeps its sync state, so an endpoint named again is not started
     * again from the beginning. Returns the configured endpoints whose rooms are not all flagged
     * yet: `added` (not recorded before: new, renamed, or gone for longer than the grace) and
     * `syncing` (every one not synced, the added included); and the endpoints `removed` now.
     * Such an endpoint starts from the beginning of every room: `flagRooms` raises the flag of
     * every room with changes for it, a batch at a time.
     *
     * Never waits for a row lock (another process's `flagRooms` holds its endpoint's row for a
     * batch): a locked row is refreshed or deleted by a later run. Only an endpoint not recorded
     * yet waits, for the settle passes in flight (`settleDelivered`), in a transaction of its own.
     */
    async syncEndpoints(
      endpointIds: readonly string[],
      options: { graceMs?: number } = {},
    ): Promise<{ added: string[]; syncing: string[]; removed: string[] }> {
      const ids = [...endpointIds];
      const grace = (options.graceMs ?? WEBHOOK_ENDPOINT_GRACE_MS) / 1000;
      const refresh = grace / 10;
      // The heartbeat and the removal touch disjoint rows (configured here or not), in one short
      // statement that touches no room. Each candidate row is locked (skip locked) and its
      // condition checked again at its newest version: a row another process refreshed meanwhile
      // is not deleted.
      const rows = await sql<{ id: string; syncing: boolean; removed: boolean }[]>`
        with removed as (
          delete from webhook_endpoints where id in (
            select id from webhook_endpoints
            where id <> all(${ids}::text[]) and seen_at < now() - make_interval(secs => ${grace})
            for update skip locked)
          returning id
        ), seen as (
          update webhook_endpoints set seen_at = now() where id in (
            select id from webhook_endpoints
            where id = any(${ids}::text[]) and seen_at < now() - make_interval(secs => ${refresh})
            for update skip locked)
        )
        select id, synced_at is null as syncing, false as removed from webhook_endpoints where id = any(${ids}::text[])
        union all
        select id, false, true from removed
        order by id`;
      const recorded = new Set(rows.filter((row) => !row.removed).map((row) => row.id));
      const missing = ids.filter((id) => !recorded.has(id));
      let added: string[] = [];
      if (missing.length > 0) {
        added = await inTransaction(sql, async (tx) => {
          // A settle pass whose snapshot predates this endpoint would lower rooms it has not
          // had, after its first batches saw them pending and passed them by: the endpoint
          // would never read them. This waits for the settle passes in flight; every later
          // one sees the endpoint.
          await tx`select pg_advisory_xact_lock(${ENDPOINTS_LOCK})`;
          const inserted = await tx<{ id: string }[]>`
            insert into webhook_endpoints (id) select unnest(${missing}::text[])
            on conflict (id) do nothing returning id`;
          return inserted.map((row) => row.id).sort();
        });
      }
      const syncing = [...new Set([...rows.filter((row) => !row.removed && row.syncing).map((row) => row.id), ...added])].sort();
      return { added, syncing, removed: rows.filter((row) => row.removed).map((row) => row.id) };
    },

    /**
     * One batch of an endpoint's sync (`syncEndpoints`): raises `webhook_pending` on the rooms
     * with changes among the next `batchSize` rooms in id order (tombstones included) from where
     * the endpoint's sync stands, and records where it stands now, all in one short
     * transaction; the last batch marks the endpoint synced. Null when there is nothing to do:
     * the endpoint is synced, gone, or another process is running one of its batches now.
     *
     * No room is lost. A room flagged stays flagged until every recorded endpoint, this one
     * included, has acknowledged its last change (`settleDelivered` counts every row of
     * `webhook_endpoints`, whichever process recorded it, and a pass that started before this
     * endpoint was recorded has committed before its first batch: see `syncEndpoints`). A room passed without a
     * change yet, or created meanwhile (wherever its id falls), is flagged by the trigger
     * (migration 0004) when it first changes. A room already pending needs nothing. So the
     * rooms behind the position are all pending for it, whatever ran meanwhile.
     *
     * Never waits for a lock: a room locked now (a send in flight, the settle pass) is skipped,
     * and the next batch starts at it (a send that commits a change flags it itself; one rolled
     * back leaves it to that batch). A send waits at most for
     * this batch's own short transaction, never for the sync; and a batch that never waits takes
     * part in no deadlock.
     */
    async flagRooms(endpointId: string, options: { batchSize: number }): Promise<{ flagged: number; synced: boolean } | null> {
      return sql.begin(async (tx) => {
        // The endpoint's row, locked for the batch: two processes never flag the same batch,
        // and one finding it locked moves on to its dispatch.
        const [endpoint] = await tx<{ flag_from: string | null }[]>`
          select flag_from from webhook_endpoints where id = ${endpointId} and synced_at is null
          for update skip locked`;
        if (!endpoint) return null;
        const from = endpoint.flag_from ?? NIL_UUID;
        // The first room after this batch (by the primary key); none: the batch is the last.
        const [next] = await tx<{ id: string }[]>`
          select id from rooms where id >= ${from}::uuid order by id offset ${options.batchSize} limit 1`;
        const range = next
          ? tx`id >= ${from}::uuid and id < ${next.id}::uuid`
          : tx`id >= ${from}::uuid`;
        // Only the rooms this batch could lock are flagged, each rechecked at its newest version.
        const flagged = await tx`
          with locked as (
            select id from rooms where ${range} and not webhook_pending and last_change_seq > 0
            order by id for update skip locked
          )
          update rooms set webhook_pending = true where id = any(array(select id from locked))`;
        // Read after it (this transaction's flags seen): the first room of the batch still to
        // flag, one locked by another transaction; the next batch starts there.
        const [left] = await tx<{ id: string }[]>`
          select id from rooms where ${range} and not webhook_pending and last_change_seq > 0 order by id limit 1`;
        const skipped = left?.id ?? null;
        const synced = skipped === null && !next;
        await tx`
          update webhook_endpoints
          set flag_from = ${synced ? null : (skipped ?? next!.id)}::uuid,
              synced_at = ${synced ? tx`now()` : tx`null`}
          where id = ${endpointId}`;
        return { flagged: flagged.count, synced };
      });
    },

    /**
     * Lowers `webhook_pending` on rooms every endpoint has acknowledged through their last
     * change: every endpoint recorded in `webhook_endpoints` (whichever process configured it,
     * however long ago within the grace of `syncEndpoints`) and those given (this process's own,
     * recorded or not), so that replicas configured differently (a rolling update) never lower a
     * flag another's endpoint still needs. A slice at a time: examines the next `limit` pending rooms after `after` in id
     * order, whether behind or not, and lowers those caught up. `last` is the last room examined,
     * where the next pass goes on; null once it reached the end (the next starts again from the
     * first). Bounded work per call whatever the number of pending rooms: reading every pending
     * room on every poll took 4.6 ms a poll at 1,500 busy rooms (bench:probe --pods 4 --webhook,
     * auto_explain), growing with them. (Lowering each room as its delivery catches it up was
     * tried: a busy room is caught up after every delivery and changed again a moment later, and
     * each lowering and raising rewrites the room's row and its indexes: the worker's Postgres
     * CPU doubled, 2.0-2.2% of a core to 3.9-4.2%, in the same probe.)
     */
    async settleDelivered(endpointIds: readonly string[], options: { after: string | null; limit: number }): Promise<{ settled: number; last: string | null }> {
      const given = [...endpointIds];
      // "After nothing" is all.
      const after = options.after ?? NIL_UUID;
      return inTransaction(sql, async (tx) => {
        // Shared: passes run side by side; an endpoint being recorded waits for them (see
        // `syncEndpoints`), and the statement below, whose snapshot is taken after this, sees it.
        await tx`select pg_advisory_xact_lock_shared(${ENDPOINTS_LOCK})`;
        const endpoints = [
          ...new Set([...given, ...(await tx<{ id: string }[]>`select id from webhook_endpoints`).map((row) => row.id)]),
        ];
        // Every endpoint's cursor is a lookup by its key: as a join, Postgres planned it (in the
        // statement's generic plan, made while few cursors existed) as a read of all of
        // webhook_cursors per room.
        const caughtUp = (room: string, lastChangeSeq: string) => tx`not exists (
            select 1 from unnest(${endpoints}::text[]) e(id)
            where coalesce((select w.delivered_change_seq from webhook_cursors w
                            where w.endpoint_id = e.id and w.room_id = ${tx(room)}), 0) < ${tx(lastChangeSeq)})`;
        // Only the rooms that look caught up in the statement's snapshot are locked, by key in id
        // order (as a send batch locks rooms, so the two cannot deadlock), and checked again at
        // their newest version once locked; a room locked by a change in flight is skipped, never
        // waited for. A change after that raises the flag again through the trigger (migration 0004).
        const [row] = await tx<{ settled: number; examined: number; last: string | null }[]>`
          with slice as (
            select id, last_change_seq from rooms
            where webhook_pending and id > ${after}::uuid order by id limit ${options.limit}
          ), done as (
            select l.id from (select id from slice s where ${caughtUp('s.id', 's.last_change_seq')} order by id) c
            cross join lateral (
              select id from rooms
              where rooms.id = c.id and rooms.webhook_pending and ${caughtUp('rooms.id', 'rooms.last_change_seq')}
              for update skip locked) l
          ), lowered as (
            update rooms set webhook_pending = false where rooms.id = any(array(select id from done))
            returning 1
          )
          select (select count(*)::int from lowered) as settled,
                 (select count(*)::int from slice) as examined,
                 (select id from slice order by id desc limit 1) as last`;
        return { settled: row?.settled ?? 0, last: row && row.examined >= options.limit ? row.last : null };
      });
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
