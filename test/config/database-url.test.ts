import { describe, expect, it } from 'vitest';
import { parseDatabaseUrl, redactDatabaseUrl, sessionTargetOf, withDatabaseName } from '@chat/db';
import { ConfigError, loadConfig } from '@chat/gateway';
import { loadWorkerConfig } from '@chat/worker';

const base = { JWT_SECRET: 'x'.repeat(32) };
const pair = 'postgres://chat:s3cret@pg-0.db:5432,pg-1.db:5433/chat?sslmode=require';

describe('DATABASE_URL with one or several hosts', () => {
  it('reads the host list, the database and the parameters', () => {
    const parsed = parseDatabaseUrl(pair);
    expect(parsed.hosts).toEqual(['pg-0.db:5432', 'pg-1.db:5433']);
    expect(parsed.database).toBe('chat');
    expect(parsed.firstHostUrl.host).toBe('pg-0.db:5432');
    expect(parsed.firstHostUrl.searchParams.get('sslmode')).toBe('require');
    expect(parseDatabaseUrl('postgresql://127.0.0.1/chat').hosts).toEqual(['127.0.0.1']);
  });

  it('refuses what is not a Postgres URL of hosts, with the reason', () => {
    expect(() => parseDatabaseUrl('mysql://h/chat')).toThrow(/postgres:\/\//);
    expect(() => parseDatabaseUrl('postgres://h1,/chat')).toThrow(/host/);
    expect(() => parseDatabaseUrl('postgres://h1:5432,h 2/chat')).toThrow(/host/);
    expect(() => parseDatabaseUrl('postgres://h1,h2:99999/chat')).toThrow();
    expect(() => parseDatabaseUrl('postgres://h1,h2')).toThrow(/database/);
    expect(() => parseDatabaseUrl('postgres://h1,h2/chat?target_session_attrs=any')).toThrow(/target_session_attrs/);
  });

  it('names another database on the same servers, keeping credentials and parameters', () => {
    expect(withDatabaseName(pair, 'postgres')).toBe('postgres://chat:s3cret@pg-0.db:5432,pg-1.db:5433/postgres?sslmode=require');
    expect(withDatabaseName('postgres://h/chat', 'postgres')).toBe('postgres://h/postgres');
  });

  it('never shows the password', () => {
    expect(redactDatabaseUrl(pair)).toBe('postgres://chat:***@pg-0.db:5432,pg-1.db:5433/chat?sslmode=require');
    expect(redactDatabaseUrl(pair)).not.toContain('s3cret');
  });

  it('asks postgres.js for the primary when several hosts are listed, and for read-write as primary', () => {
    expect(sessionTargetOf('postgres://h/chat')).toBeUndefined();
    expect(sessionTargetOf(pair)).toBe('primary');
    expect(sessionTargetOf(`${pair}&target_session_attrs=read-write`)).toBe('primary');
    expect(sessionTargetOf(`${pair}&target_session_attrs=prefer-standby`)).toBe('prefer-standby');
  });

  it('is what the gateway and the worker accept, and they say why they refuse', () => {
    expect(loadConfig({ ...base, DATABASE_URL: pair }).databaseUrl).toBe(pair);
    expect(loadWorkerConfig({ DATABASE_URL: pair }).databaseUrl).toBe(pair);
    expect(() => loadConfig({ ...base, DATABASE_URL: 'postgres://h1,,h2/chat' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, DATABASE_URL: 'postgres://h1,,h2/chat' })).toThrow(/DATABASE_URL/);
    expect(() => loadWorkerConfig({ DATABASE_URL: 'not a url' })).toThrow(/DATABASE_URL/);
  });
});
