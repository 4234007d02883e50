import postgres, { type Sql } from 'postgres';
import { inject } from 'vitest';

/**
 * A direct postgres.js client on the run's test database, for asserting what is (not) stored.
 * One small pool per test file; close it in afterAll.
 */
export function openTestDatabase(): Sql {
  return postgres(inject('databaseUrl'), { max: 2, onnotice: () => {} });
}

/** Message rows of a room, deleted ones included. */
export async function countMessageRows(sql: Sql, roomId: string): Promise<number> {
  const [row] = await sql<{ count: number }[]>`select count(*)::int as count from messages where room_id = ${roomId}`;
  return row?.count ?? 0;
}
