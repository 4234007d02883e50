import type { Sql } from 'postgres';

/**
 * A parameter the batch statements and the barrier ignore, there to make each at least 1 KiB:
 * postgres.js (3.4) writes a query's bytes at once only from 1 KiB of them on and defers
 * smaller ones to `setImmediate`, the end of the event loop's iteration, which on a loaded pod
 * comes after the acks and broadcasts of the batch before and the sends read meanwhile:
 * milliseconds. A small batch waited for it before it even left; behind a large statement
 * (written at once) the barrier left only after Postgres had answered the statement, a second
 * round trip per batch. Now every batch leaves in the turn it is made, with its barrier
 * (test/storage/durability-barrier.test.ts). 1 KiB more per batch on the wire costs nothing
 * measurable.
 */
export const SEND_AT_ONCE_PADDING = '.'.repeat(1024);

/**
 * A transaction of its own that commits synchronously and writes WAL (a transactional logical
 * message, which nothing decodes): its COMMIT returns only once the WAL is flushed up to its
 * commit record, and so up to every commit written before it. Executable by any role. A
 * prepared statement (a tagged template), parsed and planned once per connection: as a simple
 * query it was parsed and planned for every batch (~40 µs more Postgres CPU per batch of 1–4).
 *
 * Run after a read, it makes what that read saw durable before anyone is told: a change
 * committed asynchronously (the group commit's early lock release) is visible to other sessions
 * before its WAL is flushed (and before a synchronous standby has it), and the barrier's commit
 * record comes after every commit that read could see.
 */
export const durabilityBarrier = (db: Sql) =>
  db`select set_config('synchronous_commit', 'on', true), pg_logical_emit_message(true, 'chat-durable', ''), length(${SEND_AT_ONCE_PADDING}::text) > 0`;
