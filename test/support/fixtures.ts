import postgres from 'postgres';
import { test as base } from 'vitest';
import { createDatabase } from '@chat/db';
import {
  closeAllSockets,
  connect as connectSocket,
  createTestDatabase,
  killAllProcesses,
  type TestSocket,
} from '@chat/testing';
import { startCluster } from './cluster.ts';
import { closeAllWorkers, startTestWorker } from './worker.ts';

export interface ClusterOptions {
  /** Gateway pods started in this process (default 2). */
  pods?: number;
  /** Gateway settings on top of the test defaults (see startCluster). */
  env?: Record<string, string>;
  /**
   * A fresh, migrated database of the file's own instead of the run's shared one: needed when
   * a worker runs (it sweeps every room of its database) or a test lists every room.
   */
  ownDatabase?: boolean;
}

/**
 * The test API of a file that talks to one in-process cluster:
 *
 *   const test = clusterTest({ pods: 2, env: { MESSAGE_RATE_LIMIT_PER_MINUTE: '100000' } });
 *   test('…', async ({ cluster, connect }) => { … });
 *
 * File-scoped (set up on first use, shared by the file's tests and `test.beforeAll` hooks):
 * - `cluster`: the pods; at the end of the file every socket, spawned process and in-process
 *   worker is closed, then the pods, then the file's own database if it had one.
 * - `url`: the first pod's base URL.
 * - `sql`: a postgres.js client on the cluster's database, for asserting what is stored.
 * Test-scoped (closed when the test ends):
 * - `connect(url, token)`: a connected socket.io-client.
 * - `startWorker(env?)`: the worker app in this process on the cluster's services (see
 *   startTestWorker); a test may close it earlier.
 */
export function clusterTest(options: ClusterOptions = {}) {
  return base
    .extend('cluster', { scope: 'file' }, async ({}, { onCleanup }) => {
      const database = options.ownDatabase ? await createTestDatabase() : null;
      const databaseEnv: Record<string, string> = database ? { DATABASE_URL: database.url } : {};
      const cluster = await startCluster(options.pods ?? 2, { ...databaseEnv, ...options.env }).catch(async (error: unknown) => {
        await database?.drop();
        throw error;
      });
      onCleanup(async () => {
        closeAllSockets();
        await killAllProcesses();
        await closeAllWorkers();
        await cluster.close();
        await database?.drop();
      });
      return cluster;
    })
    .extend('url', { scope: 'file' }, ({ cluster }) => cluster.pods[0]!.url)
    .extend('sql', { scope: 'file' }, ({ cluster }, { onCleanup }) => {
      const sql = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
      onCleanup(() => sql.end());
      return sql;
    })
    .extend('connect', async ({}, { onCleanup }) => {
      const opened: TestSocket[] = [];
      onCleanup(() => {
        for (const socket of opened) socket.close();
      });
      return async (url: string, token: string | undefined) => {
        const socket = await connectSocket(url, token);
        opened.push(socket);
        return socket;
      };
    })
    .extend('startWorker', async ({ cluster }, { onCleanup }) => {
      const started: { close(): Promise<void> }[] = [];
      onCleanup(async () => {
        await Promise.allSettled(started.map((worker) => worker.close()));
      });
      return async (env: Record<string, string> = {}) => {
        const worker = await startTestWorker(cluster, env);
        started.push(worker);
        return worker;
      };
    });
}

export interface DatabaseTestOptions {
  /** The `database` client's pool size (default 2). */
  maxConnections?: number;
}

/**
 * The test API of a file that works on a database of its own, with no cluster:
 *
 *   const test = databaseTest({ maxConnections: 4 });
 *   test.beforeAll(async ({ sql }) => { … });
 *   test('…', async ({ database }) => { … });
 *
 * File-scoped (set up on first use, shared by the file's tests and `test.beforeAll` hooks):
 * - `testDb`: a fresh, migrated database (createTestDatabase), dropped at the end of the file.
 * - `database`: the application's client on it (createDatabase), closed before the drop.
 * - `sql`: `database.sql`.
 * One such database a file: file-scoped fixtures are kept by name, so a second `databaseTest`
 * in the same file would be handed the first one's database, not a database of its own.
 */
export function databaseTest(options: DatabaseTestOptions = {}) {
  return base
    .extend('testDb', { scope: 'file' }, async ({}, { onCleanup }) => {
      const testDb = await createTestDatabase();
      onCleanup(() => testDb.drop());
      return testDb;
    })
    .extend('database', { scope: 'file' }, ({ testDb }, { onCleanup }) => {
      const database = createDatabase({ url: testDb.url, maxConnections: options.maxConnections ?? 2 });
      onCleanup(() => database.close());
      return database;
    })
    .extend('sql', { scope: 'file' }, ({ database }) => database.sql);
}
