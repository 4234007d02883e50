import { randomUUID } from 'node:crypto';
import { busChannelPrefix, createShardedEmitter } from '@chat/bus';
import { Redis } from 'ioredis';
import pino from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createMembershipsRepository, createRoomOccupancyRepository } from '@chat/db';
import { createOccupancyQueue, createPresenceStore } from '@chat/presence';
import { CHAT_NAMESPACE, type ServerToClientEvents } from '@chat/protocol';
import { runRoomOccupancy } from '@chat/worker';
import { createTestDatabase, uniquePrefix, type TestDatabase } from '@chat/testing';

/**
 * Issue 20 §3 at the size of a pod's restart: its users reconnect elsewhere together and every
 * one of them is marked for the occupancy job. One run must take all that is due (in bounded
 * chunks), not a fixed 200 subjects a run (a second each: 3,000 rooms were announced 15 s
 * late, a pod of 50,000 users four minutes late).
 */
const ROOMS = 3_000;

let database: TestDatabase;
let sql: postgres.Sql;
let redis: Redis;

beforeAll(async () => {
  database = await createTestDatabase();
  sql = postgres(database.url, { max: 2, onnotice: () => {} });
  redis = new Redis(inject('redisUrl'));
});

afterAll(async () => {
  redis?.disconnect();
  await sql?.end({ timeout: 5 });
  await database?.drop();
});

describe('room occupancy after a mass reconnect', () => {
  it('records every due room in one run and settles the queue', { timeout: 60_000 }, async () => {
    const prefix = uniquePrefix('occ');
    const queue = createOccupancyQueue(redis, prefix);
    const presence = createPresenceStore(redis, prefix);

    // 3,000 rooms recorded as occupied whose one member went offline; one room recorded as
    // vacated whose member is online now.
    const away = randomUUID();
    const here = randomUUID();
    await sql`insert into users (id, nickname) values (${away}, '떠난이'), (${here}, '남은이')`;
    const vacated = Array.from({ length: ROOMS }, () => randomUUID());
    const occupied = randomUUID();
    await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at, occupied)
      select id::uuid, 'occ', ${away}, 1, now(), now() + interval '1 day', true
      from json_array_elements_text(${JSON.stringify(vacated)}::text::json) as x(id)`;
    await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at, occupied)
      values (${occupied}, 'occ', ${here}, 1, now(), now() + interval '1 day', false)`;
    await sql`insert into room_members (room_id, user_id)
      select id::uuid, ${away} from json_array_elements_text(${JSON.stringify(vacated)}::text::json) as x(id)`;
    await sql`insert into room_members (room_id, user_id) values (${occupied}, ${here})`;
    await presence.heartbeat('occ-pod', null);
    await presence.connect('occ-pod', here);
    for (let at = 0; at < ROOMS; at += 500) {
      await Promise.all(vacated.slice(at, at + 500).map((roomId) => queue.mark({ roomId }, 0)));
    }
    await queue.mark({ userId: here }, 0);

    const deps = {
      queue,
      presence,
      memberships: createMembershipsRepository(sql),
      occupancy: createRoomOccupancyRepository(sql),
      emitter: createShardedEmitter<ServerToClientEvents>(redis, { channelPrefix: busChannelPrefix(prefix), nsp: CHAT_NAMESPACE }),
      logger: pino({ level: 'silent' }),
    };
    expect(await runRoomOccupancy(deps)).toEqual({ looked: ROOMS + 1, changed: ROOMS + 1 });

    const kinds = await sql<{ kind: string; n: number }[]>`select kind, count(*)::int as n from room_events group by kind order by kind`;
    expect(kinds).toEqual([
      { kind: 'room-occupied', n: 1 },
      { kind: 'room-vacated', n: ROOMS },
    ]);
    // One change each, numbered 1 (these rooms had none before).
    expect(await sql`select count(*)::int as n from rooms where last_change_seq <> 1 or occupied <> (id = ${occupied})`).toEqual([{ n: 0 }]);
    expect(await redis.zcard(`${prefix}:occupancy:pending`)).toBe(0);
    // Nothing left, nothing recorded twice.
    expect(await runRoomOccupancy(deps)).toEqual({ looked: 0, changed: 0 });
    await redis.del(`${prefix}:presence:pods`, `${prefix}:presence:pod:occ-pod`);
  });

  it('keeps a subject marked again after it was read', async () => {
    const prefix = uniquePrefix('occ');
    const queue = createOccupancyQueue(redis, prefix);
    const roomIds = [randomUUID(), randomUUID(), randomUUID()];
    for (const roomId of roomIds) await queue.mark({ roomId }, 0);
    const due = await queue.due(10);
    expect(due).toHaveLength(3);
    // The second room changes again while the job looks: a later look is due for it.
    await queue.mark({ roomId: roomIds[1]! }, 60_000);
    await queue.settle(due);
    expect(await redis.zrange(`${prefix}:occupancy:pending`, 0, -1)).toEqual([`r:${roomIds[1]}`]);
    await redis.del(`${prefix}:occupancy:pending`);
  });
});
