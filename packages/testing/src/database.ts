import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { MIGRATIONS_FOLDER, dropDatabase, ensureDatabase, runMigrations } from '@chat/db';

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

/**
 * A fresh database migrated only up to its first `migrations` journal entries: the schema an
 * existing installation had before the later migrations, for testing them on rows it holds
 * (`runMigrations(url)` then applies the rest).
 */
export async function createTestDatabaseUpTo(migrations: number): Promise<TestDatabase> {
  const url = new URL(inject('databaseUrl'));
  url.pathname = `${url.pathname}_old_${randomBytes(3).toString('hex')}`;
  const databaseUrl = url.toString();
  const folder = mkdtempSync(join(tmpdir(), 'chat-migrations-'));
  cpSync(MIGRATIONS_FOLDER, folder, { recursive: true });
  const journalPath = join(folder, 'meta', '_journal.json');
  const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: unknown[] };
  journal.entries = journal.entries.slice(0, migrations);
  writeFileSync(journalPath, JSON.stringify(journal));
  await ensureDatabase(databaseUrl);
  try {
    await runMigrations(databaseUrl, { migrationsFolder: folder });
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
  return { url: databaseUrl, drop: () => dropDatabase(databaseUrl) };
}
