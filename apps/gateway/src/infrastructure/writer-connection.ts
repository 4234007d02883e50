import type { Sql } from 'postgres';
import type { Database } from '@chat/db';

/**
 * The group commit's own connection (one: statements run in the order sent), replaced by a
 * fresh one on request. A batch stalls when postgres.js never settles its query: seen after
 * `pg_terminate_backend` of the writer's session (fault scenario 4c), where the client went on
 * waiting on a connection whose server had gone, and every later batch queued behind it on the
 * same single connection, so the pod acknowledged no send again until it restarted. The causes
 * found (a close after a socket error rejected nothing; a reopened connection kept the old
 * one's unsent bytes) are patched in postgres.js (patches/, test/storage/postgres-driver.test.ts);
 * this stays as the backstop for any other way a query can be left unanswered. The old
 * connection is destroyed (its pending queries reject, and the writer has already given up
 * on them) and the next batch opens a new one.
 */
export class WriterConnection {
  private database: Database;

  constructor(private readonly open: () => Database) {
    this.database = open();
  }

  /** The connection the next batch uses. */
  get sql(): Sql {
    return this.database.sql;
  }

  replace(): void {
    const stale = this.database;
    this.database = this.open();
    void stale.sql.end({ timeout: 0 }).catch(() => undefined);
  }

  close(): Promise<void> {
    return this.database.close();
  }
}
