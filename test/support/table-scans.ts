import { createDatabase } from '@chat/db';

/**
 * Sequential scans of each table that `work` made on a connection of its own: the counters of
 * `pg_stat_user_tables` before and after, once that connection has reported them (a backend
 * reports at most once a second unless told to; told, it does when its next statement ends).
 * A plan test asserts which tables a statement reads whole, whatever the planner's estimates.
 * One more scan of `rooms`, made last on the same connection, proves the counters were
 * reported; it is not in the counts returned.
 */
export async function seqScansOf(
  url: string,
  tables: readonly string[],
  work: (sql: ReturnType<typeof createDatabase>['sql']) => Promise<void>,
): Promise<Record<string, number>> {
  const reader = createDatabase({ url, maxConnections: 1 });
  const names = [...new Set([...tables, 'rooms'])];
  const counts = async () => {
    const rows = await reader.sql<{ relname: string; n: string }[]>`
      select relname, seq_scan::text as n from pg_stat_user_tables where relname = any(${names}::text[])`;
    return new Map(rows.map((row) => [row.relname, Number(row.n)]));
  };
  try {
    const before = await counts();
    const worker = createDatabase({ url, maxConnections: 1 });
    try {
      await work(worker.sql);
      // The control: no index on `name`, so a read of the whole table.
      await worker.sql`select count(*) from rooms where name is not null`;
      await worker.sql`select pg_stat_force_next_flush()`;
      await worker.sql`select 1`;
    } finally {
      await worker.close();
    }
    const after = await counts();
    const delta = (table: string) => (after.get(table) ?? 0) - (before.get(table) ?? 0);
    if (delta('rooms') < 1) throw new Error('the connection did not report its table counters');
    return Object.fromEntries(tables.map((table) => [table, delta(table) - (table === 'rooms' ? 1 : 0)]));
  } finally {
    await reader.close();
  }
}
