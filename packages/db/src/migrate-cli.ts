import { parseDatabaseUrl } from './database-url.ts';
import { ensureDatabase, runMigrations } from './migrate.ts';

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/chat';
try {
  // Creating the database needs a connection to the `postgres` maintenance database, which a
  // managed Postgres may not grant the migration role: MIGRATE_CREATE_DATABASE=false skips it.
  if (process.env.MIGRATE_CREATE_DATABASE !== 'false') await ensureDatabase(url);
  await runMigrations(url);
  console.log(`migrations applied to ${parseDatabaseUrl(url).database}`);
} catch (error) {
  // One line saying what is wrong (a malformed DATABASE_URL, Postgres unreachable, a migration
  // refused), not a stack trace; the URL itself is not repeated: it may hold a password.
  const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
  console.error(`db:migrate failed: ${error instanceof Error ? error.message : String(error)}${cause}`);
  process.exit(1);
}
