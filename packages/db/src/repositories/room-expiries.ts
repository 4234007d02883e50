import type { Sql } from 'postgres';

/**
 * The expiries a room's messages are stored under (their partition key, docs/partitions.md), as a
 * set-returning expression over the `rooms` row aliased `room`: the room's `expires_at` and every
 * earlier one the partition job has not emptied yet (an extend or close lists it, migration
 * 0013). Usually one. A read takes each in a lateral sub-query of its own with a LIMIT (which
 * Postgres does not flatten into a join): `m.expires_at = <one of them>` is then pruned to that
 * one partition each time the sub-query runs. `m.expires_at = any(<the array>)` is not pruned at
 * all: an index probe of every day partition.
 */
export const storedExpiries = (sql: Sql, room: string) => sql`unnest(array_prepend(${sql(room)}.expires_at, ${sql(room)}.earlier_expiries))`;
