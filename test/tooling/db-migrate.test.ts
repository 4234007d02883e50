import { execFile } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { freePort } from '@chat/testing/ports';
import { ROOT } from './interrupt.ts';

/**
 * README: `pnpm db:migrate` applies packages/db/migrations to DATABASE_URL, creating the
 * database first. Run twice it changes nothing the second time; a bad DATABASE_URL or an
 * unreachable server gets one line saying so (no stack trace, never the password).
 */
const name = `chat_test_migrate_cli_${Math.random().toString(16).slice(2, 10)}`;
const admin = postgres('postgres://postgres@127.0.0.1:5432/postgres', { max: 1, onnotice: () => {} });
afterAll(async () => {
  await admin.unsafe(`drop database if exists "${name}" with (force)`);
  await admin.end({ timeout: 5 });
});

function migrate(databaseUrl: string): Promise<{ status: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'packages/db/src/migrate-cli.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, env: { ...process.env, DATABASE_URL: databaseUrl } }, (error, stdout, stderr) =>
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : -1) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

describe('pnpm db:migrate', () => {
  it('creates and migrates the database, and a second run is a no-op', async () => {
    const url = `postgres://postgres@127.0.0.1:5432/${name}`;
    const first = await migrate(url);
    expect(first.status, first.out).toBe(0);
    expect(first.out).toContain(`migrations applied to ${name}`);
    const db = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const applied = await db`select count(*)::int as n from drizzle.__drizzle_migrations`;
      const second = await migrate(url);
      expect(second.status, second.out).toBe(0);
      expect(await db`select count(*)::int as n from drizzle.__drizzle_migrations`).toEqual(applied);
    } finally {
      await db.end({ timeout: 5 });
    }
  }, 60_000);

  it('says in one line what is wrong with DATABASE_URL or the server', async () => {
    const malformed = await migrate('mysql://root@127.0.0.1/chat');
    expect(malformed.status).toBe(1);
    expect(malformed.out.trim()).toBe('db:migrate failed: must be a postgres:// or postgresql:// URL');
    const down = await migrate(`postgres://postgres:not-to-be-printed@127.0.0.1:${await freePort()}/${name}_down`);
    expect(down.status).toBe(1);
    expect(down.out).toMatch(/^db:migrate failed: .*ECONNREFUSED/);
    expect(down.out).not.toMatch(/\n\s+at /);
    expect(down.out).not.toContain('not-to-be-printed');
  }, 60_000);
});
