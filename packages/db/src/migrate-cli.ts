import { ensureDatabase, runMigrations } from './migrate.ts';

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/chat';
await ensureDatabase(url);
await runMigrations(url);
console.log(`migrations applied to ${new URL(url).pathname.slice(1)}`);
