import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createDatabase, createMembershipsRepository, createMessagesRepository, isDatabaseUnavailable, type Database } from '@chat/db';
import { createTestDatabase, startTcpRelay, type TcpRelay } from '@chat/testing';

/** Each test's pool and its stand-in server (a peer, or a relay to the real Postgres). */
let server: Server | null = null;
let relay: TcpRelay | null = null;
let database: Database | null = null;

afterEach(async () => {
  await database?.close().catch(() => undefined);
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
