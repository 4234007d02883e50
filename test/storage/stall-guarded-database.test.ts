import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDatabase, DatabaseBusyError, DatabaseStalledError, isDatabaseUnavailable, schema, StallGuardedDatabase, type Database } from '@chat/db';
import { createTestDatabase, startTcpRelay, type TcpRelay, type TestDatabase } from '@chat/testing';

/**
 * StallGuardedDatabase bounds every call of the worker's pool and the gateway's general pool,
 * and replaces the pool when a call stalls. The bound runs from the call, so it counts the wait
 * behind the pool's other work too: on a busy but healthy pool a call waiting for the one
 * connection passed its bound, was taken for a stall, and the pool was ended under the
 * statements running on it (every other call failed too). One connection here, so every call
 * waits behind the ones before it.
 */

/** The bound. The statements below are timed against it with half a second to spare or more. */
const BOUND_MS = 2000;

let testDb: TestDatabase | null = null;
let relay: TcpRelay | null = null;
let guarded: StallGuardedDatabase | null = null;
let replacements: boolean[] = [];

beforeEach(async () => {
  testDb = await createTestDatabase();
  replacements = [];
  const setup = createDatabase({ url: testDb.url, maxConnections: 1 });
  await setup.sql`create table stall_probe (id int not null)`;
  await setup.close();
});

afterEach(async () => {
  await guarded?.close();
  await relay?.close();
  await testDb?.drop();
  guarded = relay = testDb = null;
});

/** A guarded pool of `connections` to `url`, each open. */
async function guard(url: string, connections = 1): Promise<StallGuardedDatabase> {
  guarded = new StallGuardedDatabase(() => createDatabase({ url, maxConnections: connections, statementTimeoutMs: 5000 }), {
    stalledAfterMs: BOUND_MS,
    onReplaced: (first) => replacements.push(first),
  });
  const opened = await Promise.all(Array.from({ length: connections }, () => probeRows(guarded!)));
  expect(opened).toEqual(opened.map(() => 0));
  return guarded;
}

/**
 * How `work` settled: its value, or its error. Its `then` called at once: a query is handed to
 * the pool when first awaited, so the calls reach the pool in the order they are made.
 */
function outcome(work: PromiseLike<unknown>): Promise<unknown> {
  return Promise.resolve(work.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  ));
}

/**
 * Two long statements the one connection runs in turn, both legitimate (well inside the
 * statement timeout): the first answers within the bound, the second runs across it, so what
 * was called with them still waits when the bound elapses. Parameters of a statement not yet
 * prepared make postgres.js describe it first and hand the connection nothing more meanwhile:
 * what follows waits in the pool's queue.
 */
function busyConnection(database: Database) {
  return {
    first: outcome(database.sql`select pg_sleep(${1}) as first`),
    second: outcome(database.sql`select pg_sleep(${1.5}) as second`),
  };
}

async function probeRows(database: Database): Promise<number> {
  const [row] = await database.sql<{ count: number }[]>`select count(*)::int as count from stall_probe`;
  return row?.count ?? -1;
}

describe('StallGuardedDatabase on a busy pool', () => {
  it('rejects a statement that waited for the connection past the bound, withdraws it, and keeps the pool', async () => {
    const database = await guard(testDb!.url);
    const busy = busyConnection(database);
    const insert = outcome(database.sql`insert into stall_probe (id) values (${1})`);

    expect(await insert).toEqual({ error: expect.any(DatabaseBusyError) });
    expect(isDatabaseUnavailable((await insert as { error: unknown }).error)).toBe(true);
    // Called after the rejection, this runs after the second statement: the insert, taken out
    // of the queue, never ran.
    expect(await probeRows(database)).toBe(0);
    expect(await busy.first).toEqual({ value: [{ first: '' }] });
    // On a connection already, it could not be taken back: it ran to its end, its caller answered.
    expect(await busy.second).toEqual({ error: expect.any(DatabaseBusyError) });
    expect(replacements).toEqual([]);
  });

  it('rejects a statement pipelined behind the long ones past the bound, and keeps the pool', async () => {
    const database = await guard(testDb!.url);
    // Without parameters the statements are not described first: postgres.js pipelines what
    // follows onto the busy connection (sent at once), where it cannot be withdrawn.
    const first = outcome(database.sql`select pg_sleep(1) as first`);
    const second = outcome(database.sql`select pg_sleep(1.5) as second`);
    const insert = outcome(database.sql`insert into stall_probe (id) values (${1})`);

    expect(await insert).toEqual({ error: expect.any(DatabaseBusyError) });
    expect(await first).toEqual({ value: [{ first: '' }] });
    expect(await second).toEqual({ error: expect.any(DatabaseBusyError) });
    expect(replacements).toEqual([]);
    // Sent before its caller was answered, it ran: as any write answered UNAVAILABLE may have.
    expect(await probeRows(database)).toBe(1);
  });

  it('rejects a transaction (sql.begin and drizzle) that waited past the bound, and it writes nothing when its turn comes', async () => {
    const database = await guard(testDb!.url);
    const busy = busyConnection(database);
    const begun: string[] = [];
    const begin = outcome(
      database.sql.begin(async (tx) => {
        begun.push('begin');
        await tx`insert into stall_probe (id) values (${1})`;
      }),
    );
    const drizzle = outcome(
      database.db.transaction(async (tx) => {
        begun.push('drizzle');
        await tx.insert(schema.users).values({ id: randomUUID(), nickname: '김철수' });
      }),
    );

    expect(await begin).toEqual({ error: expect.any(DatabaseBusyError) });
    expect(await drizzle).toEqual({ error: expect.any(DatabaseBusyError) });
    // Called after them, this runs after both transactions had their turn: rolled back at once.
    expect(await probeRows(database)).toBe(0);
    expect(await database.db.$count(schema.users)).toBe(0);
    expect(begun).toEqual([]);
    expect(await busy.first).toEqual({ value: [{ first: '' }] });
    expect(replacements).toEqual([]);
  });
});

describe('StallGuardedDatabase on a busy pool of two connections', () => {
  it('rolls back a transaction that began late and ran across the bound, rather than commit what its caller was told failed', async () => {
    const database = await guard(testDb!.url, 2);
    // One connection busy past the transaction's start, the other till after it began: it
    // begins after an answer and Postgres answers again while it runs, so it waited, not stalled.
    const first = outcome(database.sql`select pg_sleep(${1}) as first`);
    const other = outcome(database.sql`select pg_sleep(${1.2}) as other`);
    const transaction = outcome(
      database.sql.begin(async (tx) => {
        await tx`insert into stall_probe (id) values (${1})`;
        await tx`select pg_sleep(1.5)`;
      }),
    );

    expect(await transaction).toEqual({ error: expect.any(DatabaseBusyError) });
    expect(await first).toEqual({ value: [{ first: '' }] });
    expect(await other).toEqual({ value: [{ other: '' }] });
    expect(replacements).toEqual([]);
    // Its statements ran to their end, then it rolled back: once no other session of this
    // test's database is busy or in a transaction, its row is not there.
    const othersBusy = async () => {
      const [row] = await database.sql<{ count: number }[]>`
        select count(*)::int as count from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle'`;
      return row?.count;
    };
    await expect.poll(othersBusy, { timeout: 5000 }).toBe(0);
    expect(await probeRows(database)).toBe(0);
  });
});

describe('StallGuardedDatabase on a silent Postgres', () => {
  it('replaces the pool when a statement and a transaction get no answer (a connection frozen without a reset)', async () => {
    relay = await startTcpRelay(testDb!.url);
    const database = await guard(relay.url);

    relay.freeze();
    const statement = outcome(database.sql`select 1 as one`);
    const transaction = outcome(database.sql.begin((tx) => tx`insert into stall_probe (id) values (${1})`));
    expect(await statement).toEqual({ error: expect.any(DatabaseStalledError) });
    const { error } = (await transaction) as { error: unknown };
    expect(isDatabaseUnavailable(error)).toBe(true);
    expect(replacements).toEqual([true]);

    // New connections get through again: the fresh pool answers.
    relay.thaw();
    expect(await probeRows(database)).toBe(0);
  });

  it('replaces the pool when a transaction gets no answer on a frozen connection', async () => {
    relay = await startTcpRelay(testDb!.url);
    const database = await guard(relay.url);

    relay.freeze();
    expect(await outcome(database.sql.begin((tx) => tx`select 1`))).toEqual({ error: expect.any(DatabaseStalledError) });
    expect(replacements).toEqual([true]);
  });
});
