import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDatabaseUrl, postgresConnectionOf, redactDatabaseUrl, sessionTargetOf, withDatabaseName } from '@chat/db';
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

  it('reads libpq\'s certificate parameters itself and gives postgres.js the TLS options they mean', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'chat-pg-tls-config-'));
    try {
      const pem = (name: string) => {
        const file = path.join(dir, name);
        writeFileSync(file, `-----BEGIN CERTIFICATE-----\n${name}-body\n-----END CERTIFICATE-----\n`);
        return file;
      };
      const [ca, cert, key] = [pem('ca.crt'), pem('client.crt'), pem('client.key')];
      const files = `sslrootcert=${encodeURIComponent(ca)}&sslcert=${encodeURIComponent(cert)}&sslkey=${encodeURIComponent(key)}`;
      // Without files the URL goes to postgres.js as it is (it reads sslmode, sslrootcert=system).
      expect(postgresConnectionOf(pair)).toEqual({ url: pair });
      expect(postgresConnectionOf('postgres://h/chat?sslrootcert=system&sslmode=verify-full')).toEqual({ url: 'postgres://h/chat?sslrootcert=system&sslmode=verify-full' });
      // With files: they and sslmode leave the URL (postgres.js would send them to the server as
      // settings), other parameters stay, the hosts stay listed.
      const full = postgresConnectionOf(`postgres://u:pw@h1:5432,h2:5433/chat?sslmode=verify-full&${files}&target_session_attrs=primary`);
      expect(full.url).toBe('postgres://u:pw@h1:5432,h2:5433/chat?target_session_attrs=primary');
      expect(full.ssl).toMatchObject({ rejectUnauthorized: true, ca: expect.stringContaining('ca.crt-body'), cert: expect.stringContaining('client.crt-body'), key: expect.stringContaining('client.key-body') });
      expect(full.ssl?.checkServerIdentity).toBeUndefined();
      // verify-ca checks the chain, not the name; require with a root certificate is verify-ca (libpq).
      const verifyCa = postgresConnectionOf(`postgres://h/chat?sslmode=verify-ca&sslrootcert=${encodeURIComponent(ca)}`).ssl!;
      expect(verifyCa.rejectUnauthorized).toBe(true);
      expect(verifyCa.checkServerIdentity?.('h', {} as never)).toBeUndefined();
      expect(postgresConnectionOf(`postgres://h/chat?sslmode=require&sslrootcert=${encodeURIComponent(ca)}`).ssl!.rejectUnauthorized).toBe(true);
      expect(postgresConnectionOf(`postgres://h/chat?sslmode=require&sslcert=${encodeURIComponent(cert)}&sslkey=${encodeURIComponent(key)}`).ssl!.rejectUnauthorized).toBe(false);
      // Refused with the reason, at start: files without a TLS sslmode, half a client identity,
      // an unknown sslmode, a file that cannot be read (named, its content never shown).
      expect(() => parseDatabaseUrl(`postgres://h/chat?${files}`)).toThrow(/sslmode=require, verify-ca or verify-full/);
      expect(() => parseDatabaseUrl(`postgres://h/chat?sslmode=prefer&${files}`)).toThrow(/sslmode=require/);
      expect(() => parseDatabaseUrl(`postgres://h/chat?sslmode=verify-full&sslcert=${encodeURIComponent(cert)}`)).toThrow(/sslcert and sslkey/);
      expect(() => parseDatabaseUrl('postgres://h/chat?sslmode=strict')).toThrow(/sslmode must be one of/);
      expect(() => loadWorkerConfig({ DATABASE_URL: `postgres://h/chat?sslmode=verify-full&sslrootcert=${encodeURIComponent(path.join(dir, 'missing.crt'))}` })).toThrow(
        /DATABASE_URL: cannot read .*missing\.crt \(ENOENT\)/,
      );
      writeFileSync(path.join(dir, 'not-pem'), 'secret-key-body');
      expect(() => loadConfig({ ...base, DATABASE_URL: `postgres://h/chat?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}&sslcert=${encodeURIComponent(cert)}&sslkey=${encodeURIComponent(path.join(dir, 'not-pem'))}` })).toThrow(
        /not-pem holds no PEM block/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
