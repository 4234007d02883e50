import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pino from 'pino';
import { expect, inject } from 'vitest';
import { busChannelPrefix, createShardedEmitter } from '@chat/bus';
import { createMembershipsRepository, createMessagesRepository, createRoomOccupancyRepository, createUsersRepository } from '@chat/db';
import { createOccupancyQueue, createPresenceStore } from '@chat/presence';
import { CHAT_NAMESPACE, type ServerToClientEvents } from '@chat/protocol';
import { startTcpRelay, uniquePrefix } from '@chat/testing';
import { runPresenceGc, runRoomOccupancy } from '@chat/worker';
import { databaseTest } from '../support/index.ts';

/**
 * A gateway pod dies holding the last online member of a room: the presence GC takes the pod
 * out and marks the member for the occupancy job, which records `room-vacated`. The mark goes to
 * Redis after the GC's Postgres lookups; when it fails (Redis away for a moment), the pod must
 * stay collected for the next run rather than be settled with its rooms never looked at: the
 * room would stay `occupied` for good, its `room-vacated` never in the feed or the webhooks.
 */
const it = databaseTest({ maxConnections: 4 });

it('a dead pod whose occupancy mark failed is retried, and its room is recorded vacated', { timeout: 30_000 }, async ({ sql, database }) => {
  const prefix = uniquePrefix('gc-occupancy');
  const logger = pino({ level: 'silent' });
  const redis = new Redis(inject('redisUrl'));
  const relay = await startTcpRelay(inject('redisUrl'));
  // The occupancy queue's own connection, as the worker's fail-fast one: refused while cut.
  const occupancyRedis = new Redis(relay.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  occupancyRedis.on('error', () => undefined);
  try {
    const [userId, roomId] = [randomUUID(), randomUUID()];
    await sql`insert into users (id, nickname) values (${userId}, '김철수')`;
    await sql`insert into rooms (id, name, created_by, created_at, expires_at, occupied) values (${roomId}, 'r', ${userId}, now(), now() + interval '1 hour', true)`;
    expect(await createMembershipsRepository(sql).add(roomId, userId, 500)).toMatchObject({ changed: true });

    // The member's only socket was on a pod that stopped beating.
    const presence = createPresenceStore(redis, prefix);
    await presence.connect('dead-pod', userId);
    await redis.zadd(`${prefix}:presence:pods`, 'XX', 0, 'dead-pod');

    const gc = () =>
      runPresenceGc({
        presence,
        occupancy: createOccupancyQueue(occupancyRedis, prefix),
        memberships: createMembershipsRepository(sql),
        messages: createMessagesRepository(sql),
        users: createUsersRepository(database.db),
        emitter: createShardedEmitter<ServerToClientEvents>(redis, { channelPrefix: busChannelPrefix(prefix), nsp: CHAT_NAMESPACE }),
        logger,
        staleAfterMs: 1000,
      });
    const occupancy = () =>
      runRoomOccupancy({
        queue: createOccupancyQueue(redis, prefix),
        presence,
        memberships: createMembershipsRepository(sql),
        occupancy: createRoomOccupancyRepository(sql),
        emitter: createShardedEmitter<ServerToClientEvents>(redis, { channelPrefix: busChannelPrefix(prefix), nsp: CHAT_NAMESPACE }),
        logger,
      });

    await occupancyRedis.ping();
    await relay.cut();
    const failed = await gc();
    expect(failed.failure).not.toBeNull();

    await relay.restore();
    expect(await gc()).toMatchObject({ deadPods: 1, offline: 1, failure: null });
    expect(await occupancy()).toMatchObject({ changed: 1 });
    const kinds = await sql<{ kind: string }[]>`select kind from room_events where room_id = ${roomId} and kind in ('room-occupied', 'room-vacated')`;
    expect(kinds.map((row) => row.kind)).toEqual(['room-vacated']);
  } finally {
    occupancyRedis.disconnect();
    redis.disconnect();
    await relay.close();
  }
});
