import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { createDatabase, createRoomsRepository, createSessionsRepository, type Database, type RoomsRepository } from '@chat/db';
import { RoomCache } from '../../apps/gateway/src/infrastructure/room-cache.ts';
import { sleep } from '@chat/testing';
import { databaseTest } from '../support/index.ts';

const it = databaseTest({ maxConnections: 4 });

/**
 * The gateway's room cache against a real `rooms` table: events that miss the same room at
 * once share one lookup (a pod that starts sent one query per event until the first answer),
 * a failed lookup is not kept, and `forget` (the room's lifetime changed) is never undone by
 * a lookup that read the room before the change.
 */
describe('RoomCache', () => {
  let database: Database;
  let rooms: RoomsRepository;
  let userId: string;

  it.beforeAll(async ({ database: db }) => {
    database = db;
    rooms = createRoomsRepository(database.db);
    userId = randomUUID();
    await database.sql`insert into users (id, nickname) values (${userId}, '방장')`;
  });

  async function room(): Promise<string> {
    const id = randomUUID();
    await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      values (${id}, 'cache', ${userId}, 1, now(), now() + interval '1 day')`;
    return id;
  }

  /** The real repository, its `find` calls counted (and, when `hold` is set, held after the read). */
  function counted(source: () => RoomsRepository, hold?: () => Promise<void>) {
    const calls: string[] = [];
    const repository = {
      ...rooms,
      async find(id: string) {
        calls.push(id);
        const found = await source().find(id);
        if (hold) await hold();
        return found;
      },
    } satisfies RoomsRepository;
    return { repository, calls };
  }

  it('50 events missing the same room at once make one lookup, then none', async () => {
    const id = await room();
    const { repository, calls } = counted(() => rooms);
    const cache = new RoomCache(repository);
    const answers = await Promise.all(Array.from({ length: 50 }, () => cache.get(id)));
    expect(calls).toEqual([id]);
    expect(new Set(answers.map((answer) => answer?.id))).toEqual(new Set([id]));
    expect((await cache.get(id))?.id).toBe(id);
    expect(calls).toHaveLength(1);
  });

  it('50 events for a made-up room at once make one lookup, and its miss is remembered', async () => {
    const id = randomUUID();
    const { repository, calls } = counted(() => rooms);
    const cache = new RoomCache(repository);
    const answers = await Promise.all(Array.from({ length: 50 }, () => cache.get(id)));
    expect(answers.every((answer) => answer === null)).toBe(true);
    expect(await cache.get(id)).toBeNull();
    expect(calls).toHaveLength(1);
  });

  it('a lookup that fails fails for all its waiters and is not kept: the next event asks again', async ({ testDb }) => {
    const id = await room();
    const closed = createDatabase({ url: testDb.url, maxConnections: 1 });
    await closed.close();
    let source = createRoomsRepository(closed.db);
    const { repository, calls } = counted(() => source);
    const cache = new RoomCache(repository);
    const settled = await Promise.allSettled(Array.from({ length: 10 }, () => cache.get(id)));
    expect(settled.every((outcome) => outcome.status === 'rejected')).toBe(true);
    expect(calls).toHaveLength(1);
    source = rooms;
    expect((await cache.get(id))?.id).toBe(id);
    expect(calls).toHaveLength(2);
  });

  it('forget() during a lookup: later events read the room again, and the earlier read is not kept', async () => {
    const id = await room();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let holding = true;
    const { repository, calls } = counted(() => rooms, async () => {
      // Only the first lookup is held, after it has read the room as it was.
      if (!holding) return;
      holding = false;
      await gate;
    });
    const cache = new RoomCache(repository);
    const before = cache.get(id);
    while (calls.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The room's lifetime changes (the server API extended it) and the pod is told.
    await database.sql`update rooms set expires_at = expires_at + interval '1 hour' where id = ${id}`;
    cache.forget(id);
    const after = await cache.get(id);
    release();
    const early = await before;
    expect(calls).toHaveLength(2);
    expect(after!.expiresAt.getTime() - early!.expiresAt.getTime()).toBe(3_600_000);
    // What stays cached is the read made after the change.
    expect((await cache.get(id))!.expiresAt.getTime()).toBe(after!.expiresAt.getTime());
    expect(calls).toHaveLength(2);
  });

  it('rooms a session read are kept: no lookup after; a forget since the read drops them', async () => {
    const [first, second] = [await room(), await room()];
    const sessions = createSessionsRepository(database.sql);
    const member = randomUUID();
    await database.sql`insert into users (id, nickname) values (${member}, '손님')`;
    await database.sql`insert into room_members (room_id, user_id) values (${first}, ${member}), (${second}, ${member})`;
    const { repository, calls } = counted(() => rooms);
    const cache = new RoomCache(repository);

    const generation = cache.generation();
    const [session] = await sessions.open([{ id: member, nickname: null, rooms: true }]);
    cache.seed(session!.rooms, generation);
    expect((await cache.get(first))?.name).toBe('cache');
    expect((await cache.get(second))?.id).toBe(second);
    expect(calls).toEqual([]);

    // A room's lifetime changed while a session read it: that read is not kept.
    const fresh = new RoomCache(repository);
    const before = fresh.generation();
    const [again] = await sessions.open([{ id: member, nickname: null, rooms: true }]);
    fresh.forget(first);
    fresh.seed(again!.rooms, before);
    await fresh.get(second);
    expect(calls).toEqual([second]);
  });

  it('reads a room again once its entry is older than maxAgeMs: a lifetime notice the bus lost heals', async () => {
    const id = await room();
    const { repository, calls } = counted(() => rooms);
    const cache = new RoomCache(repository, { maxAgeMs: 300 });
    const before = (await cache.get(id))!.expiresAt;
    // The server API closed the room, and this pod never heard (no `forget`).
    await database.sql`update rooms set expires_at = now() where id = ${id}`;
    expect(cache.peek(id)?.expiresAt).toEqual(before);
    await sleep(400);
    expect(cache.peek(id)).toBeUndefined();
    const after = (await cache.get(id))!.expiresAt;
    expect(after.getTime()).toBeLessThan(before.getTime());
    expect(calls).toEqual([id, id]);
  });
});
