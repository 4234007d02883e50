import type { Sql } from 'postgres';

/** One day partition of `messages` (migration 0002): rows whose room expires on `day` (UTC). */
export interface MessagePartition {
  name: string;
  /** YYYY-MM-DD, UTC. */
  day: string;
}

export type DropOutcome =
  | { status: 'dropped'; estimatedRows: number }
  /** The day is not over (plus the grace) by the database's clock. */
  | { status: 'not-due' }
  /**
   * A room of that day is not marked expired by the sweep yet (it has not been announced), or a
   * room not yet marked lists an earlier expiry in that day (its messages not yet moved out).
   */
  | { status: 'rooms-pending' }
  /** No partition of that day (a table staged by a move out of messages_default is not one yet). */
  | { status: 'missing' };

/** The name messages_ensure_partition (migration 0002) gives a day's partition. */
/** One batch of `relocateBatch`. */
export interface RelocationBatch {
  /** Rows moved to the room's expiry (the room is live). */
  moved: number;
  /** Rows deleted (the room is expired: closed, or extended and then expired). */
  deleted: number;
  /** Earlier expiries the room still lists after this batch (0: done). */
  remaining: number;
}

export function partitionName(day: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new Error(`not a day: ${day}`);
  return `messages_p${day.replaceAll('-', '')}`;
}

const PARTITION_NAME = /^messages_p(\d{4})(\d{2})(\d{2})$/;
/** More day partitions than this means something is badly wrong; never list without bound. */
const MAX_PARTITIONS = 1000;
/** Shared with messages_ensure_partition: creation and drop never interleave. */
const PARTITION_LOCK = 727275;

/**
 * Creating and dropping the day partitions of `messages`. Every step is idempotent and checks
 * its condition again under the partition lock, in the database's clock: two workers, a late
 * run or a run killed midway converge on the same set of partitions.
 */
export function createMessagePartitionsRepository(sql: Sql) {
  return {
    /** The day partitions that exist, oldest first (messages_default is not one). */
    async list(): Promise<MessagePartition[]> {
      const rows = await sql<{ name: string }[]>`
        select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'public.messages'::regclass and c.relname ~ '^messages_p[0-9]{8}$'
        order by c.relname limit ${MAX_PARTITIONS}`;
      return rows.flatMap(({ name }) => {
        const match = PARTITION_NAME.exec(name);
        return match ? [{ name, day: `${match[1]}-${match[2]}-${match[3]}` }] : [];
      });
    },

    /**
     * The days that must have a partition now: today .. today + `aheadDays`, and every day up to
     * the latest expiry of a room not yet expired (a room may live longer than the look-ahead;
     * at most `maxAheadDays`). Days with rows waiting in messages_default are not read here (a
     * scan of it, however large): the move out of it (`beginMove` …) creates those.
     */
    async wantedDays(aheadDays: number, maxAheadDays: number): Promise<string[]> {
      const rows = await sql<{ day: string }[]>`
        with today as (select (now() at time zone 'UTC')::date as d),
        latest as (select (max(expires_at) at time zone 'UTC')::date as d from rooms where expired_at is null)
        select to_char(g, 'YYYY-MM-DD') as day from today, latest,
          -- No live room: only the look-ahead (least() skips a null, which read as the maximum).
          generate_series(today.d,
            greatest(today.d + ${aheadDays}::int, least(coalesce(latest.d, today.d), today.d + ${maxAheadDays}::int)),
            interval '1 day') g
        order by day`;
      return rows.map((row) => row.day);
    },

    /**
     * Creates the day's partition unless it exists (moving in the few rows of that day sent to
     * messages_default since it was last emptied). Fails while a move out of messages_default is
     * under way, and when a table of the partition's name exists that is not a partition.
     */
    async ensure(day: string): Promise<boolean> {
      const [row] = await sql<{ created: boolean }[]>`select messages_ensure_partition(${day}::date) as created`;
      return row?.created === true;
    },

    /**
     * Moving the rows of messages_default into their days' partitions without holding sends up
     * (migration 0010, docs/partitions.md): `beginMove` starts one (or finds one under way; false
     * when messages_default is empty and none is), `copyBatch` copies its next rows (0: done),
     * `replayBatch` copies again rows changed since (0: none left), `finishMove` locks, replays
     * the rest, empties messages_default and attaches the days, which it returns. Each is one
     * short transaction; only `finishMove` locks what a send needs (rooms, then
     * messages_default), for a catalog change and the changes since the last replay. The rows
     * stay in messages_default, readable and unique-checked where they were, until that commit.
     */
    async beginMove(): Promise<boolean> {
      const [row] = await sql<{ moving: boolean }[]>`select messages_default_move_begin() as moving`;
      return row?.moving === true;
    },

    async copyBatch(rows: number): Promise<number> {
      const [row] = await sql<{ copied: number }[]>`select messages_default_move_copy(${rows}::int) as copied`;
      return row?.copied ?? 0;
    },

    async replayBatch(rows: number): Promise<number> {
      const [row] = await sql<{ replayed: number }[]>`select messages_default_move_replay(${rows}::int) as replayed`;
      return row?.replayed ?? 0;
    },

    /** `lockWaitMs` bounds each of its lock waits (a timeout is 55P03; null: the connection's lock_timeout). */
    async finishMove(lockWaitMs: number | null = null): Promise<string[]> {
      const [row] = await sql<{ days: string[] }[]>`
        select coalesce(array_agg(to_char(d, 'YYYY-MM-DD') order by d), '{}') as days
        from unnest(messages_default_move_finish(${lockWaitMs}::int)) d`;
      return row?.days ?? [];
    },

    /**
     * Rooms whose messages are still stored under an earlier expiry (an extend or close listed
     * it, room-lifetime.repository.ts), up to `limit`, by id: the worklist of `relocateBatch`,
     * read through its partial index.
     */
    async roomsWithEarlierExpiries(limit: number): Promise<string[]> {
      const rows = await sql<{ id: string }[]>`
        select id from rooms where earlier_expiries <> '{}' order by id limit ${limit}`;
      return rows.map((row) => row.id);
    },

    /**
     * Up to `rows` of the room's messages stored under the first of its earlier expiries: moved
     * to the room's expiry while the room lives (Postgres moves each row into that day's
     * partition), deleted once it has expired — a closed room's messages are unreadable from the
     * close on, and the people in it expect them gone (docs/partitions.md). A batch that takes
     * fewer than `rows` has emptied that expiry, which leaves the list in the same transaction:
     * from then on reads do not look there, and its day may be dropped.
     *
     * One short transaction. The room row is locked first, as a send locks it, so the room's
     * sends, deletes and lifetime changes wait for one batch, never for the whole move, and
     * nothing else writes the room's messages meanwhile: none is stored under a listed expiry
     * (a send stores under `expires_at`, which the list never holds), so "fewer than `rows`"
     * stays true until the commit. The batch is read by a second statement, in a snapshot taken
     * once the lock is held: a soft delete that committed while this waited is moved as it is
     * now, not as it was. Each row moves whole (`UPDATE` of the partition key: deleted from one
     * partition, inserted into the other, in this transaction), so a read sees it in exactly one
     * of the room's expiries, both listed until the last row has left.
     */
    async relocateBatch(roomId: string, rows: number): Promise<RelocationBatch> {
      return sql.begin(async (tx) => {
        const [room] = await tx<{ expires_at: string; source: string; live: boolean; listed: number }[]>`
          select expires_at::text, earlier_expiries[1]::text as source, expires_at > clock_timestamp() as live,
                 cardinality(earlier_expiries) as listed
          from rooms where id = ${roomId} and earlier_expiries <> '{}' for no key update`;
        if (!room) return { moved: 0, deleted: 0, remaining: 0 };
        // The same expiry in both the inner and the outer filter: each prunes to its partition.
        const batch = tx`
          select id, expires_at from messages where room_id = ${roomId} and expires_at = ${room.source}::timestamptz
          order by seq limit ${rows}`;
        const result = room.live
          ? await tx`update messages set expires_at = ${room.expires_at}::timestamptz
                     where expires_at = ${room.source}::timestamptz and (id, expires_at) in (${batch})`
          : await tx`delete from messages where expires_at = ${room.source}::timestamptz and (id, expires_at) in (${batch})`;
        let remaining = room.listed;
        if (result.count < rows) {
          await tx`update rooms set earlier_expiries = array_remove(earlier_expiries, ${room.source}::timestamptz) where id = ${roomId}`;
          remaining -= 1;
        }
        return { moved: room.live ? result.count : 0, deleted: room.live ? 0 : result.count, remaining };
      });
    },

    /**
     * Drops the day's partition once the day is over by `graceMs` and every room expiring that
     * day has been marked expired by the sweep (announced, memberships gone), and no room not
     * yet marked lists an earlier expiry in that day (its messages would still be readable). Dropping a
     * partition takes an ACCESS EXCLUSIVE lock on `messages` for the length of a catalog change;
     * the connection's lock_timeout bounds the wait behind running statements, and a run that
     * times out is retried by the next. Unlike creating a day (messages_ensure_partition locks
     * rooms first, for the foreign key ATTACH clones), this takes no lock on rooms beyond the
     * check's ACCESS SHARE: the partition's foreign key goes with it, but the action triggers on
     * rooms belong to the parent's constraint, so DROP locks only messages, messages_default and
     * the partition (checked in pg_locks, Postgres 15). Waiting for messages, it holds nothing a
     * send needs, so a send queues behind it and never deadlocks with it
     * (test/worker/partitions.test.ts); locking rooms first would only add a wait.
     */
    async dropIfExpired(day: string, graceMs: number): Promise<DropOutcome> {
      const name = partitionName(day);
      return sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(${PARTITION_LOCK})`;
        const [state] = await tx<{ present: boolean; due: boolean; pending: boolean; rows: number }[]>`
          select exists (select 1 from pg_inherits
                         where inhrelid = to_regclass(${`public.${name}`}) and inhparent = 'public.messages'::regclass) as present,
                 (${day}::date + 1)::timestamp at time zone 'UTC' <= now() - ${graceMs}::bigint * interval '1 millisecond' as due,
                 exists (select 1 from rooms
                         where expired_at is null
                           and expires_at >= ${day}::date::timestamp at time zone 'UTC'
                           and expires_at < (${day}::date + 1)::timestamp at time zone 'UTC')
                   -- a room extended out of that day whose messages the job has not moved yet
                   -- (read through the partial index of rooms listing an earlier expiry)
                   or exists (select 1 from rooms, unnest(earlier_expiries) e
                              where earlier_expiries <> '{}' and expired_at is null
                                and e >= ${day}::date::timestamp at time zone 'UTC'
                                and e < (${day}::date + 1)::timestamp at time zone 'UTC') as pending,
                 coalesce((select greatest(reltuples, 0)::float8 from pg_class
                           where oid = to_regclass(${`public.${name}`})), 0) as rows`;
        if (!state?.present) return { status: 'missing' } as const;
        if (!state.due) return { status: 'not-due' } as const;
        if (state.pending) return { status: 'rooms-pending' } as const;
        await tx.unsafe(`drop table public."${name}"`);
        return { status: 'dropped', estimatedRows: Math.round(state.rows) } as const;
      });
    },
  };
}

export type MessagePartitionsRepository = ReturnType<typeof createMessagePartitionsRepository>;
