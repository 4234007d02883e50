import { randomUUID } from 'node:crypto';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createTestDatabase, sleep, startTcpRelay, uniquePrefix, type TcpRelay, type TestDatabase } from '@chat/testing';
import { closeAllWorkers, startTestWorker } from '../support/index.ts';

/**
 * The worker's Redis goes silent (a network partition, a Redis pod replaced behind its Service:
 * the old connections hang, no reset) and then answers again on new connections. Its jobs must
 * run again without a restart: a room expired afterwards is swept. The worker's Redis (state and
 * bus, REDIS_URL) goes through a relay; its own database.
 */

let database: TestDatabase;
let sql: Sql;
let relay: TcpRelay;

beforeAll(async () => {
  database = await createTestDatabase();
  sql = postgres(database.url, { max: 2, onnotice: () => {} });
  relay = await startTcpRelay(inject('redisUrl'));
});
afterAll(async () => {
  await closeAllWorkers();
  await relay?.close();
  await sql?.end();
  await database?.drop();
});

/** A room that expired a moment ago, without members. */
async function expiredRoom(): Promise<string> {
  const [owner, id] = [randomUUID(), randomUUID()];
  await sql`insert into users (id, nickname) values (${owner}, '방장')`;
  await sql`insert into rooms (id, name, created_by, created_at, expires_at) values (${id}, 'silent', ${owner}, now(), now() - interval '1 second')`;
  return id;
}

const swept = async (roomId: string) => (await sql`select 1 from rooms where id = ${roomId} and expired_at is not null`).length === 1;

it('runs its jobs again once a silent Redis answers on new connections', { timeout: 120_000 }, async () => {
  const services = { databaseUrl: database.url, redisUrl: relay.url, redisPrefix: uniquePrefix('silent'), busClusterNodes: null };
  await startTestWorker(services, { ROOM_EXPIRING_NOTICE_SECONDS: '0', POD_NAME: 'silent-redis' });
  const before = await expiredRoom();
  await expect.poll(() => swept(before), { timeout: 15_000, interval: 200 }).toBe(true);

  relay.freeze();
  // Longer than a sweep interval and a health check (2.5 s): every connection has commands out.
  await sleep(5000);
  relay.thaw();

  const after = await expiredRoom();
  await expect.poll(() => swept(after), { timeout: 60_000, interval: 500 }).toBe(true);
});
