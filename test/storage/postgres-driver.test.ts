import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { createDatabase, createMembershipsRepository, createMessagesRepository, isDatabaseUnavailable, type Database } from '@chat/db';
import { createTestDatabase, startTcpRelay, type TcpRelay, type TestDatabase } from '@chat/testing';

/** Each test's pool and its stand-in server (a peer, or a relay to the real Postgres). */
let server: Server | null = null;
let relay: TcpRelay | null = null;
let database: Database | null = null;
let testDb: TestDatabase | null = null;

afterEach(async () => {
  await database?.close().catch(() => undefined);
  await testDb?.drop();
  testDb = null;
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await relay?.close();
  server = relay = database = null;
});

/**
 * postgres.js 3.4.9 is patched (patches/postgres@3.4.9.patch, porsager/postgres#1193): a
 * connection that the server closes cleanly (FIN, no error message) during startup left its
 * first query pending forever, reconnecting in a loop with no delay (a server killed mid-startup,
 * or a proxy, can do that). A peer that closes every connection cleanly after the startup
 * message reproduces it deterministically.
 */
describe('postgres driver: a clean close during startup', () => {
  it('rejects the query as unavailable, without a reconnect storm', async () => {
    let connections = 0;
    server = createServer((socket: Socket) => {
      connections += 1;
      socket.once('data', () => socket.end());
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');

    database = createDatabase({ url: `postgres://postgres@127.0.0.1:${address.port}/none`, maxConnections: 1, connectTimeoutSeconds: 2 });
    const outcome = await Promise.race([
      database.sql`select 1`.then(
        () => 'resolved',
        (error: unknown) => error,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still pending after 3 s'), 3000)),
    ]);
    expect(outcome).toMatchObject({ code: 'CONNECTION_CLOSED' });
    expect(isDatabaseUnavailable(outcome)).toBe(true);

    // The unpatched driver reconnects with no delay for as long as the query is parked.
    const settledAt = connections;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(connections - settledAt).toBe(0);
    expect(settledAt).toBeLessThanOrEqual(2);
  });
});

/**
 * The group commit's connection, killed under it (pg_terminate_backend: a failover, an admin, a
 * pooler restart). postgres.js 3.4.9 is patched for three faults this found (see the patch):
 * after the server's FATAL error the socket errored (ECONNRESET or EPIPE) before it closed, and
 * a close with an error rejected nothing, so the query in flight — and every query the pool
 * handed to the connection between the error and the close — stayed pending until some later
 * query reopened the connection; that reopened connection gave its first answers to the stale
 * query; and it could keep the old connection's unsent bytes, behind which its startup message
 * was never sent (pending until the connect timeout). Unpatched, nearly every kill left a query
 * pending (a writer's batch waits for its stall bound, 15 s, and its pod acknowledges nothing
 * meanwhile). A close during the startup's type lookup also rejected that internal query with
 * nothing to catch it: an unhandled rejection, which ends a Node process.
 */
describe('postgres driver: the backend terminated under pipelined queries', () => {
  it('every query settles at once, ok or failed, through 40 kills, and the connection works after', async () => {
    testDb = await createTestDatabase();
    const application = `kill-${randomUUID().slice(0, 8)}`;
    // As the writer's: one connection, pipelined statement + barrier pairs.
    database = createDatabase({ url: testDb.url, maxConnections: 1, synchronousCommit: 'off', applicationName: application, connectTimeoutSeconds: 5 });
    const admin = createDatabase({ url: testDb.url, maxConnections: 1 });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const deadline = performance.now() + 20_000;
    let kills = 0;
    let settled = 0;
    const pending: string[] = [];
    try {
      const killer = async () => {
        while (kills < 40 && performance.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 30));
          const rows = await admin.sql<{ killed: boolean }[]>`
            select pg_terminate_backend(pid) as killed from pg_stat_activity where application_name = ${application}`;
          kills += rows.filter((row) => row.killed).length;
        }
      };
      const sender = async () => {
        for (let i = 0; kills < 40 && performance.now() < deadline && pending.length === 0; i++) {
          const big = i % 3 === 0 ? 'x'.repeat(3000) : 'y';
          const pair = Promise.allSettled([
            database!.sql`select ${big}::text as v, pg_sleep(${Math.random() * 0.003})`,
            database!.sql`select set_config('synchronous_commit', 'on', true), pg_logical_emit_message(true, 'chat-durable', '')`,
          ]);
          // The statement timeout is 5 s; a pair with no answer 3 s after a kill is left hanging.
          const outcome = await Promise.race([pair, new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), 3000))]);
          if (outcome === 'pending') pending.push(`pair ${i} after ${kills} kills`);
          else settled++;
        }
      };
      await Promise.all([killer(), sender(), sender()]);
      expect(pending).toEqual([]);
      expect(kills).toBeGreaterThanOrEqual(40);
      expect(settled).toBeGreaterThan(40);
      // The last kill may land as the loop ends: a query handed to the connection it is closing
      // fails (CONNECTION_CLOSED, as it should); the next one opens a new connection.
      let answer: unknown = null;
      for (let attempt = 0; attempt < 3 && answer === null; attempt++) {
        answer = await database.sql<{ one: number }[]>`select 1 as one`.then(
          ([row]) => row?.one ?? 'no row',
          () => null,
        );
        if (answer === null) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(answer).toBe(1);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await admin.close();
    }
  }, 40_000);
});

/**
 * After an outage the pool must reach Postgres again within about a second of it being back:
 * the driver's default backoff grows to 20 s after a handful of refused connections.
 */
describe('postgres driver: reconnecting after an outage', () => {
  it('answers within ~1 s of Postgres coming back after ten refused connections', async () => {
    // Nothing listens yet: every attempt is refused, and the driver's retry counter climbs.
    relay = await startTcpRelay(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', { listening: false });
    database = createDatabase({ url: relay.url, maxConnections: 2, connectTimeoutSeconds: 2 });
    for (let attempt = 0; attempt < 10; attempt++) {
      await expect(database.sql`select 1`).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    }

    // "Postgres is back": the relay listens on that port.
    await relay.restore();
    const backAt = performance.now();
    const answeredAfterMs = await Promise.race([
      database.sql`select 1`.then(() => performance.now() - backAt),
      new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 4 s'), 4000)),
    ]);
    expect(typeof answeredAfterMs).toBe('number');
    expect(answeredAfterMs).toBeLessThan(2000);
  });
});

/**
 * postgres.js picks an array parameter's type (`sql.array`) when a query is built, from types
 * fetched once the client's first connection is up: on a new client the first such query went
 * out as text and failed ("malformed array literal"). The worker's first query can be the
 * presence GC's, with a dead pod waiting from before it started.
 */
describe('postgres driver: id arrays on a new client', () => {
  it('answers the GC lookups when they are the first queries of a new client', async () => {
    const testDatabase = await createTestDatabase();
    try {
      for (const lookup of ['memberships', 'messages'] as const) {
        database = createDatabase({ url: testDatabase.url, maxConnections: 2 });
        const userId = '00000000-0000-7000-8000-000000000001';
        const roomId = '00000000-0000-7000-8000-000000000002';
        const result =
          lookup === 'memberships'
            ? [...(await createMembershipsRepository(database.sql).activeRoomIdsOfUsers([userId]))]
            : await createMessagesRepository(database.sql).roomsLastWrittenBy([roomId, roomId], [userId], new Date());
        expect(result).toEqual([]);
        await database.close();
        database = null;
      }
      // Ids are quoted into the literal: one that is not a UUID fails the cast, nothing else.
      database = createDatabase({ url: testDatabase.url, maxConnections: 1 });
      await expect(createMembershipsRepository(database.sql).activeRoomIdsOfUsers(['x","y'])).rejects.toMatchObject({ code: '22P02' });
    } finally {
      await database?.close();
      database = null;
      await testDatabase.drop();
    }
  });
});

/**
 * postgres.js 3.4.9 is patched for this too: the pool's cancel() of a query parked on a
 * connection still opening only marks it, the opened connection skipped it, and with nothing
 * sent no answer ever moved the connection on: it stayed in the pool's connecting list, out of
 * use for good (the pool one connection short). StallGuardedDatabase cancels a call that waited
 * past its bound on a busy pool, which may be parked so. A relay that holds new connections
 * opens the second connection slowly.
 */
describe('postgres driver: a query cancelled while its connection opens', () => {
  it('leaves the connection usable: two transactions then run side by side', async () => {
    testDb = await createTestDatabase();
    const target = new URL(testDb.url);
    let holding = false;
    const held: (() => void)[] = [];
    server = createServer((client: Socket) => {
      client.on('error', () => undefined);
      const forward = () => {
        const upstream = connect(Number(target.port || 5432), target.hostname);
        upstream.on('error', () => client.destroy());
        client.pipe(upstream).pipe(client);
      };
      client.pause();
      if (holding) held.push(forward);
      else forward();
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const url = new URL(testDb.url);
    url.port = String(address.port);
    const application = `cancel-${randomUUID().slice(0, 8)}`;
    database = createDatabase({ url: url.toString(), maxConnections: 2, applicationName: application });
    const admin = createDatabase({ url: testDb.url, maxConnections: 1 });
    try {
      await database.sql`select 1`;
      // The first connection busy, the next query opens the second, held at the relay.
      const busy = database.sql`select pg_sleep(0.3)`.then(() => 'done');
      holding = true;
      const parked = database.sql`select 1`;
      const outcome = parked.then(
        () => 'ran',
        (error: unknown) => (error as { code?: string }).code,
      );
      await expect.poll(() => held.length).toBe(1);
      parked.cancel();
      expect(await outcome).toBe('57014');
      holding = false;
      held.splice(0).forEach((forward) => forward());
      expect(await busy).toBe('done');
      await expect
        .poll(async () => (await admin.sql`select count(*)::int as count from pg_stat_activity where application_name = ${application}`)[0]?.count)
        .toBe(2);

      const pidInTransaction = () => database!.sql.begin(async (tx) => (await tx<{ pid: number }[]>`select pg_backend_pid() as pid, pg_sleep(0.2)`)[0]?.pid);
      const [first, second] = await Promise.all([pidInTransaction(), pidInTransaction()]);
      expect(first).not.toBe(second);
    } finally {
      await admin.close();
    }
  });
});
