import { describe, expect } from 'vitest';
import { createDatabase } from '@chat/db';
import { WriterConnection } from '../../apps/gateway/src/infrastructure/writer-connection.ts';
import { databaseTest } from '../support/index.ts';

const it = databaseTest({ maxConnections: 1 });

/**
 * The group commit's connection, replaced after a stalled batch: a query stuck on the old one
 * must not hold the next batches (one connection: they would queue behind it for good).
 */
describe('WriterConnection', () => {
  it('replace() gives the next queries a new session and lets go of what the old one held', async ({ testDb, database: observer }) => {
    const writer = new WriterConnection(() => createDatabase({ url: testDb.url, maxConnections: 1, applicationName: 'writer-connection-test' }));
    try {
      const [first] = await writer.sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
      // A query the old connection never finishes (as a statement whose answer never comes),
      // and one queued behind it on the same single connection.
      const stuck = writer.sql`select pg_sleep(30)`;
      const queued = writer.sql`select 1`;
      const outcomes = Promise.allSettled([stuck, queued]);
      writer.replace();
      const [second] = await writer.sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
      expect(second!.pid).not.toBe(first!.pid);
      const settled = await outcomes;
      expect(settled.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
      // The old session is gone from the server too, not left sleeping.
      const present = async () => (await observer.sql`select 1 from pg_stat_activity where pid = ${first!.pid}`).length > 0;
      for (let waited = 0; (await present()) && waited < 5000; waited += 100) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await present()).toBe(false);
    } finally {
      await writer.close();
    }
  });
});
