import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { dropDatabase, ensureDatabase, runMigrations } from '@chat/db';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database of the test file's own, next to the run's shared one. A worker
 * sweeps every room of its database, so a file that runs one must not share rooms with other
 * files (it would expire, purge and delete their rooms, announcing it under its own prefix).
 * Pass `url` as DATABASE_URL to a cluster and drop it afterwards (test/support's
 * `clusterTest({ ownDatabase: true })` does both).
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const url = new URL(inject('databaseUrl'));
  url.pathname = `${url.pathname}_${randomBytes(3).toString('hex')}`;
  const databaseUrl = url.toString();
  await ensureDatabase(databaseUrl);
  await runMigrations(databaseUrl);
  return { url: databaseUrl, drop: () => dropDatabase(databaseUrl) };
}
