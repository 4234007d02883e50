import { fileURLToPath } from 'node:url';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres, { type Sql } from 'postgres';
import { drizzle } from 'drizzle-orm/postgres-js';
import { parseDatabaseUrl, postgresConnectionOf, sessionTargetOf, withDatabaseName } from './database-url.ts';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../migrations', import.meta.url));

/** One connection, for maintenance work that runs once (migrations, creating databases, pnpm start's check). */
export function singleConnection(url: string, options: { connectTimeoutSeconds?: number } = {}): Sql {
  const connection = postgresConnectionOf(url);
  return postgres(connection.url, {
    ...(connection.ssl ? { ssl: connection.ssl } : {}),
    max: 1,
    onnotice: () => {},
    connect_timeout: options.connectTimeoutSeconds ?? 5,
    target_session_attrs: sessionTargetOf(url),
  });
}

/**
 * Applies the committed SQL migrations; safe to run from several processes at once.
 * `migrationsFolder`: another copy of the folder (a test migrating an old schema first).
 */
export async function runMigrations(url: string, options: { migrationsFolder?: string } = {}): Promise<void> {
  const sql = singleConnection(url);
  try {
    // Serialise concurrent migrators (two pods booting together) on an advisory lock.
    await sql`select pg_advisory_lock(727274)`;
    await migrate(drizzle(sql), { migrationsFolder: options.migrationsFolder ?? MIGRATIONS_FOLDER });
    await sql`select pg_advisory_unlock(727274)`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Runs `work` on the server of `url` through its `postgres` maintenance database, with the
 * name of the database `url` names. The name is written into the statement (CREATE and DROP
 * DATABASE take no parameters), so anything but a plain identifier is refused.
 */
async function onMaintenanceDatabase(
  url: string,
  verb: string,
  work: (sql: Sql, name: string) => Promise<unknown>,
): Promise<void> {
  const name = parseDatabaseUrl(url).database;
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`refusing to ${verb} database "${name}"`);
  const sql = singleConnection(withDatabaseName(url, 'postgres'));
  try {
    await work(sql, name);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Creates the database named in `url` when it does not exist yet (local cluster, tests). */
export async function ensureDatabase(url: string): Promise<void> {
  await onMaintenanceDatabase(url, 'create', async (sql, name) => {
    const found = await sql`select 1 from pg_database where datname = ${name}`;
    if (found.length > 0) return;
    await sql.unsafe(`create database "${name}"`).catch((error: { code?: string }) => {
      if (error.code !== '42P04') throw error; // created meanwhile by a sibling process
    });
  });
}

export async function dropDatabase(url: string): Promise<void> {
  await onMaintenanceDatabase(url, 'drop', (sql, name) => sql.unsafe(`drop database if exists "${name}" with (force)`));
}
