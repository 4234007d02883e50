import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pino from 'pino';
import type { Sql } from 'postgres';
import { afterEach, describe, expect, inject } from 'vitest';
import { busChannelPrefix, busReady, createShardedEmitter, roomBusChannel } from '@chat/bus';
import { createMembershipsRepository, createRoomExpiryRepository } from '@chat/db';
import { CHAT_NAMESPACE, roomChannel, type ServerToClientEvents } from '@chat/protocol';
import { startTcpRelay, uniquePrefix, type TcpRelay } from '@chat/testing';
import { createChatEmitter, createWorkerRedis, loadWorkerConfig, runRoomSweep } from '@chat/worker';
import { databaseTest } from '../support/index.ts';

/**
 * PROTOCOL §10: `room-expired` is announced once, and a room is emptied only after the bus has
 * taken the announcement. The sweep's bus goes through a relay that is cut for the first sweep
 * (Redis away for a moment): that sweep records the change but must leave the room as it is, and
 * a later sweep announces it, with the same number, and only then empties it. A subscriber on
 * the room's bus channel (as a gateway holding a member) hears what reaches Redis. Its own
 * database: a sweep reads every due room of it.
 */

const it = databaseTest({ maxConnections: 4 });
/**
 * The age at which an unannounced record is announced again (30 s in production); longer than
 * the refused sweep's retries, so the sweep right after it still finds the record young.
 */
const ANNOUNCED_WITHIN_MS = 4000;

const opened: { close(): unknown }[] = [];
afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await item.close();
});

/** A room that expired a moment ago, with two members. */
async function expiredRoom(sql: Sql): Promise<string> {
  const [owner, guest, id] = [randomUUID(), randomUUID(), randomUUID()];
  await sql`insert into users (id, nickname) values (${owner}, '방장'), (${guest}, '손님')`;
  await sql`insert into rooms (id, name, created_by, created_at, expires_at)
    values (${id}, 'announce', ${owner}, now(), clock_timestamp() + interval '200 milliseconds')`;
  const memberships = createMembershipsRepository(sql);
  for (const user of [owner, guest]) expect(await memberships.add(id, user, 500)).toMatchObject({ changed: true });
  await sql`select pg_sleep(0.3)`;
  return id;
}

async function roomState(sql: Sql, roomId: string) {
  const [row] = await sql<{ expired: boolean; members: number; records: number }[]>`
    select (select expired_at is not null from rooms where id = ${roomId}) as expired,
           (select count(*)::int from room_members where room_id = ${roomId}) as members,
           (select count(*)::int from room_events where room_id = ${roomId} and kind = 'room-expired') as records`;
  return row!;
}

/** The room's bus channel, heard as a gateway holding a member hears it: the events Redis took. */
async function listen(prefix: string, roomId: string): Promise<string[]> {
  const heard: string[] = [];
  const subscriber = new Redis(inject('redisUrl'), { lazyConnect: true });
  opened.push({ close: () => subscriber.disconnect() });
  await subscriber.connect();
  subscriber.on('smessage', (_channel: string, message: string) => {
    const { data } = JSON.parse(message) as { data: { packet: { data: [string, { changeSeq: number }] } } };
    heard.push(`${data.packet.data[0]} ${data.packet.data[1].changeSeq}`);
  });
  await subscriber.ssubscribe(roomBusChannel(busChannelPrefix(prefix), CHAT_NAMESPACE, roomChannel(roomId)));
  return heard;
}

async function busThrough(relay: TcpRelay) {
  // As the worker's bus publisher: one retry per command, then the emit is refused.
  const client = new Redis(relay.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  client.on('error', () => undefined);
  opened.push({ close: () => client.disconnect() });
  await client.ping();
  return client;
}

/**
 * A sweep whose bus goes through a relay to Redis (cut it to refuse the sweep's publishes), on
 * the key prefix `prefix`; `refused` lists the channels of the publishes the bus refused (after
 * its client's retry): those are gone.
 */
async function sweeperThroughRelay(sql: Sql, prefix: string, expiringNoticeMs: number) {
  const relay = await startTcpRelay(inject('redisUrl'));
  opened.push(relay);
  const client = await busThrough(relay);
  const refused: string[] = [];
  const emitter = createShardedEmitter<ServerToClientEvents>(client, {
    channelPrefix: busChannelPrefix(prefix),
    nsp: CHAT_NAMESPACE,
    onError: (_error, channel) => refused.push(channel),
  });
  return { relay, sweep: sweeper(sql, emitter, expiringNoticeMs), refused };
}

/** The sweep on `emitter`, announcing again what is ANNOUNCED_WITHIN_MS old and still unannounced. */
function sweeper(sql: Sql, emitter: Parameters<typeof runRoomSweep>[0]['emitter'], expiringNoticeMs: number) {
  return () =>
    runRoomSweep({
      expiry: createRoomExpiryRepository(sql),
      emitter,
      logger: pino({ level: 'silent' }),
      expiringNoticeMs,
      tombstoneTtlMs: 7 * 86_400_000,
      batchSize: 1000,
      budgetMs: 10_000,
      announcedWithinMs: ANNOUNCED_WITHIN_MS,
    });
}

describe('room-expired while the bus refuses it', () => {
  it('leaves the room as it is, and a later sweep announces it with the same number and then empties it', { timeout: 30_000 }, async ({ sql }) => {
    const prefix = uniquePrefix('announce');
    const { relay, sweep } = await sweeperThroughRelay(sql, prefix, 0);
    const roomId = await expiredRoom(sql);
    const heard = await listen(prefix, roomId);

    await relay.cut();
    expect(await sweep()).toMatchObject({ expired: 0, unannounced: 1, membersPurged: 0 });
    expect(await roomState(sql, roomId)).toEqual({ expired: false, members: 2, records: 1 });

    await relay.restore();
    // A sweep while the record is young: its recorder may still be at it, so it waits.
    expect(await sweep()).toMatchObject({ expired: 0, unannounced: 0, membersPurged: 0 });
    expect(heard).toEqual([]);

    await sql`select pg_sleep(${ANNOUNCED_WITHIN_MS / 1000})`;
    expect(await sweep()).toMatchObject({ expired: 1, unannounced: 0, membersPurged: 2 });
    const [{ changeSeq } = { changeSeq: 0 }] = await sql<{ changeSeq: number }[]>`
      select change_seq::int as "changeSeq" from room_events where room_id = ${roomId} and kind = 'room-expired'`;
    await expect.poll(() => heard).toEqual([`room-expired ${changeSeq}`]);
    expect(await roomState(sql, roomId)).toEqual({ expired: true, members: 0, records: 1 });

    // Done once: a further sweep has nothing of the room to do.
    expect(await sweep()).toMatchObject({ expired: 0, unannounced: 0 });
    expect(heard).toHaveLength(1);
  });
});

describe('room-expiring while the bus refuses it [ext]', () => {
  it('is announced by a later sweep, with the number it was recorded with, and once', { timeout: 30_000 }, async ({ sql }) => {
    const prefix = uniquePrefix('expiring');
    const { relay, sweep, refused } = await sweeperThroughRelay(sql, prefix, 600_000);
    // Inside the notice window, far from its expiry.
    const [owner, roomId] = [randomUUID(), randomUUID()];
    await sql`insert into users (id, nickname) values (${owner}, '방장')`;
    await sql`insert into rooms (id, name, created_by, created_at, expires_at)
      values (${roomId}, 'expiring', ${owner}, now(), now() + interval '5 minutes')`;
    const heard = await listen(prefix, roomId);
    const records = () => sql<{ changeSeq: number }[]>`
      select change_seq::int as "changeSeq" from room_events where room_id = ${roomId} and kind = 'room-expiring'`;

    await relay.cut();
    expect(await sweep()).toMatchObject({ warned: 0, unwarned: 1 });
    // Recorded in the room's feed all the same (a client catching up finds it there).
    const [record, ...more] = await records();
    expect(record).toBeDefined();
    expect(more).toEqual([]);
    // Restored only once the publish has failed for good.
    await expect.poll(() => refused, { timeout: 5000 }).toHaveLength(1);
    await relay.restore();
    // A sweep while the record is young: its recorder may still be at it, so it waits.
    expect(await sweep()).toMatchObject({ warned: 0, unwarned: 0 });
    expect(heard).toEqual([]);

    await sql`select pg_sleep(${ANNOUNCED_WITHIN_MS / 1000})`;
    expect(await sweep()).toMatchObject({ warned: 1, unwarned: 0 });
    await expect.poll(() => heard).toEqual([`room-expiring ${record!.changeSeq}`]);
    expect(await records()).toEqual([record]);

    // Announced once: later sweeps leave the room alone until it expires.
    await sql`select pg_sleep(${ANNOUNCED_WITHIN_MS / 1000})`;
    expect(await sweep()).toMatchObject({ warned: 0, unwarned: 0 });
    expect(heard).toHaveLength(1);
  });
});

describe('room-expired while the bus is silent', () => {
  it('does not hold the sweep, and once Redis answers again a later sweep announces it on a new connection', { timeout: 60_000 }, async ({ sql }) => {
    const prefix = uniquePrefix('blackhole');
    const relay = await startTcpRelay(inject('redisUrl'));
    opened.push(relay);
    // The worker's own bus connection and emitter, as deps.ts builds them.
    const config = loadWorkerConfig({ DATABASE_URL: 'postgres://unused@127.0.0.1:5432/unused', REDIS_URL: relay.url, REDIS_PREFIX: prefix });
    const redis = createWorkerRedis(config.state, config.bus, pino({ level: 'silent' }));
    opened.push({ close: () => [redis.worker, redis.producer, redis.emitter, redis.bus].forEach((client) => client.disconnect()) });
    expect(await busReady(redis.bus, 10_000)).toBe(true);
    const sweep = sweeper(sql, createChatEmitter(redis.bus, { redisPrefix: prefix, adapter: 'sharded', onError: () => undefined }), 0);
    const roomId = await expiredRoom(sql);
    const heard = await listen(prefix, roomId);

    // A blackhole (a network partition, a Redis that vanished): the connection stays open and
    // nothing answers. The sweep must come back, the room left as it is, not wait for Redis.
    relay.freeze();
    expect(await sweep()).toMatchObject({ expired: 0, unannounced: 1, membersPurged: 0 });
    expect(await roomState(sql, roomId)).toEqual({ expired: false, members: 2, records: 1 });

    // Redis reachable again, on new connections only (the frozen one never comes back).
    relay.thaw();
    await sql`select pg_sleep(${ANNOUNCED_WITHIN_MS / 1000})`;
    await expect.poll(async () => (await sweep()).expired, { timeout: 20_000, interval: 200 }).toBe(1);
    const [{ changeSeq } = { changeSeq: 0 }] = await sql<{ changeSeq: number }[]>`
      select change_seq::int as "changeSeq" from room_events where room_id = ${roomId} and kind = 'room-expired'`;
    await expect.poll(() => heard).toEqual([`room-expired ${changeSeq}`]);
    expect(await roomState(sql, roomId)).toEqual({ expired: true, members: 0, records: 1 });
  });
});
