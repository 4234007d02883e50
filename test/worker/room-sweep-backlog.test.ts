import { randomUUID } from 'node:crypto';
import { busChannelPrefix, createShardedEmitter } from '@chat/bus';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject } from 'vitest';
import { createRoomExpiryRepository } from '@chat/db';
import { CHAT_NAMESPACE, type ServerToClientEvents } from '@chat/protocol';
import { runRoomSweep } from '@chat/worker';
import { uniquePrefix } from '@chat/testing';
import { databaseTest } from '../support/index.ts';

/**
 * PROTOCOL §10 when many rooms expire at once (a load test's rooms, created together with one
 * TTL): a sweep goes on picking due rooms, four at a time, instead of 200 a sweep (two seconds
 * apart: 10,000 rooms were announced over 100 s). Its own database: the sweep reads every due
 * room of it.
 */
const ROOMS = 1_000;
const MEMBERS = 3;

const it = databaseTest({ maxConnections: 4 });
let redis: Redis;

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
});

afterAll(async () => {
  redis?.disconnect();
});

describe('the room sweep with a thousand rooms due', () => {
  it('announces, empties and marks every one of them in one sweep', { timeout: 60_000 }, async ({ sql }) => {
    const owner = randomUUID();
    const users = Array.from({ length: MEMBERS }, () => randomUUID());
    await sql`insert into users (id, nickname) select id::uuid, '만료' from json_array_elements_text(${JSON.stringify([owner, ...users])}::text::json) as x(id)`;
    const rooms = Array.from({ length: ROOMS }, () => randomUUID());
    await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      select id::uuid, 'sweep', ${owner}, ${MEMBERS}, now() - interval '1 hour', now() - interval '1 second'
      from json_array_elements_text(${JSON.stringify(rooms)}::text::json) as x(id)`;
    await sql`insert into room_members (room_id, user_id)
      select r::uuid, u::uuid from json_array_elements_text(${JSON.stringify(rooms)}::text::json) as a(r)
      cross join json_array_elements_text(${JSON.stringify(users)}::text::json) as b(u)`;

    const result = await runRoomSweep({
      expiry: createRoomExpiryRepository(sql),
      emitter: createShardedEmitter<ServerToClientEvents>(redis, { channelPrefix: busChannelPrefix(uniquePrefix('sweep')), nsp: CHAT_NAMESPACE }),
      logger: pino({ level: 'silent' }),
      expiringNoticeMs: 0,
      tombstoneTtlMs: 7 * 86_400_000,
      batchSize: 1000,
      // Not the 1.5 s a sweep gets in service: this machine's speed must not decide the test.
      budgetMs: 60_000,
    });

    expect(result).toMatchObject({ expired: ROOMS, membersPurged: ROOMS * MEMBERS });
    expect(await sql`select count(*)::int as n from rooms where expired_at is null`).toEqual([{ n: 0 }]);
    expect(await sql`select count(*)::int as n from room_members`).toEqual([{ n: 0 }]);
    // Each room's `room-expired` change recorded once.
    expect(await sql`select count(*)::int as n, count(distinct room_id)::int as rooms from room_events where kind = 'room-expired'`).toEqual([{ n: ROOMS, rooms: ROOMS }]);
  });
});
