import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres, { type Sql } from 'postgres';
import { postgresConnectionOf, sessionTargetOf } from './database-url.ts';
import * as schema from './schema.ts';

export interface DatabaseOptions {
  url: string;
  maxConnections?: number;
  /** A statement running longer than this is cancelled, so a send fails fast, never hangs. */
  statementTimeoutMs?: number;
  connectTimeoutSeconds?: number;
  applicationName?: string;
  /**
   * `off` for a connection whose every commit is followed by a durability barrier of its own
   * (the group-commit writer: see createMessagesRepository); `on` (the server's default) otherwise.
   */
  synchronousCommit?: 'on' | 'off';
}

export type Db = PostgresJsDatabase<typeof schema>;

export interface Database {
  db: Db;
  /** The raw postgres.js client, for the few queries that need pipelining or `unnest`. */
  sql: Sql;
  close(): Promise<void>;
}

export function createDatabase(options: DatabaseOptions): Database {
  const connection = postgresConnectionOf(options.url);
  const sql = postgres(connection.url, {
    ...(connection.ssl ? { ssl: connection.ssl } : {}),
    max: options.maxConnections ?? 10,
    connect_timeout: options.connectTimeoutSeconds ?? 5,
    idle_timeout: 60,
    onnotice: () => {},
    // After n failed connection attempts (counted across the pool, reset by the next success)
    // postgres.js waits (0.5–1) × min(3^n / 100, 20) s before the next one, and a query handed
    // to a closed connection waits for that timer: after a 5 s outage a pod's writes stayed
    // parked for up to 20 s with Postgres long back (fault 4a). Retry at least every second.
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 1),
    // Several hosts (a primary and its standbys): each connection settles on the primary, after
    // a failover too (database-url.ts).
    target_session_attrs: sessionTargetOf(options.url),
    connection: {
      application_name: options.applicationName ?? 'chat',
      statement_timeout: options.statementTimeoutMs ?? 5000,
      // Keep lock waits bounded too: a locked table must turn into UNAVAILABLE, not a hang.
      lock_timeout: options.statementTimeoutMs ?? 5000,
      ...(options.synchronousCommit ? { synchronous_commit: options.synchronousCommit } : {}),
    },
    // int8 columns (seq, counts) fit comfortably in a double; read them as numbers.
    types: {
      bigint: {
        to: 20,
        from: [20],
        serialize: (value: number) => String(value),
        parse: (value: string) => Number(value),
      },
    },
  });
  return { db: drizzleOver(sql), sql, close: () => sql.end({ timeout: 5 }) };
}

/** The query builder over a postgres.js client (one wrapped by the caller, say). */
export function drizzleOver(sql: Sql): Db {
  return drizzle(sql, { schema });
}

/** True when the error means the database is unreachable, overloaded or timed out. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return false;
  return (
    code.startsWith('08') || // connection exceptions
    code === '57014' || // statement timeout / cancelled
    code === '55P03' || // lock timeout
    code === '57P01' || // admin shutdown (pg_terminate_backend)
    code === '57P02' ||
    code === '57P03' || // cannot connect now (starting up)
    code === '53300' || // too many connections
    code === 'CONNECT_TIMEOUT' ||
    code === 'CONNECTION_CLOSED' ||
    code === 'CONNECTION_ENDED' ||
    code === 'CONNECTION_DESTROYED' ||
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'ETIMEDOUT' ||
    code === 'EPIPE' ||
    code === 'DATABASE_STALLED' || // a call not answered in time (StallGuardedDatabase): Postgres gone without a reset
    code === 'DATABASE_BUSY' // a call not answered in time, waiting behind the pool's other work (StallGuardedDatabase)
  );
}
