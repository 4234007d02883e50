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
  /** A room of that day is not marked expired by the sweep yet: it has not been announced. */
  | { status: 'rooms-pending' }
  | { status: 'missing' };

/** The name messages_ensure_partition (migration 0002) gives a day's partition. */
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
     * The days that must have a partition now: today .. today + `aheadDays`, every day up to
     * the latest expiry of a room not yet expired (a room may live longer than the look-ahead;
     * at most `maxAheadDays`), and every day that has rows waiting in messages_default.
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
        union
        (select distinct to_char((expires_at at time zone 'UTC')::date, 'YYYY-MM-DD') from messages_default
         limit ${maxAheadDays}::int)
        order by day`;
      return rows.map((row) => row.day);
    },

    /** Creates the day's partition unless it exists (moving in rows of that day from messages_default). */
    async ensure(day: string): Promise<boolean> {
      const [row] = await sql<{ created: boolean }[]>`select messages_ensure_partition(${day}::date) as created`;
      return row?.created === true;
    },

    /**
     * Drops the day's partition once the day is over by `graceMs` and every room expiring that
     * day has been marked expired by the sweep (announced, memberships gone). Dropping a
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
          select to_regclass(${`public.${name}`}) is not null as present,
                 (${day}::date + 1)::timestamp at time zone 'UTC' <= now() - ${graceMs}::bigint * interval '1 millisecond' as due,
                 exists (select 1 from rooms
                         where expired_at is null
                           and expires_at >= ${day}::date::timestamp at time zone 'UTC'
                           and expires_at < (${day}::date + 1)::timestamp at time zone 'UTC') as pending,
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
