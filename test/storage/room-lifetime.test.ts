import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect } from 'vitest';
import { createDatabase, createRoomChangesRepository, createRoomLifetimeRepository, runMigrations, toRoomChange, type Database } from '@chat/db';
import { createTestDatabaseUpTo, type TestDatabase } from '@chat/testing';
import { databaseTest } from '../support/index.ts';

/**
 * PROTOCOL §16/§17: the server API's extend / close is a change of the room's feed,
 * `room-lifetime-changed`, numbered and recorded with the room's expiry move
 * (room-lifetime.repository.ts); migration 0007 lets `room_events` hold that kind.
 */
const HOUR_MS = 3_600_000;

/** The feed's tests run on the file's migrated database (`sql`); the migration's test makes its own, migrated up to 0007. */
const it = databaseTest({ maxConnections: 2 });

async function makeRoom(sql: Database['sql']): Promise<string> {
  const owner = randomUUID();
  const roomId = randomUUID();
  await sql`insert into users (id, nickname) values (${owner}, '방장')`;
  await sql`insert into rooms (id, name, created_by, created_at, expires_at)
    values (${roomId}, 'lifetime', ${owner}, now(), now() + interval '1 hour')`;
  return roomId;
}

const kinds = async (sql: Database['sql'], roomId: string) =>
  (await sql<{ kind: string }[]>`select kind from room_events where room_id = ${roomId} order by change_seq`).map((row) => row.kind);

describe('migration 0007 on a database that already has room events', () => {
  let old: TestDatabase;
  let db: Database;
  afterAll(async () => {
    await db?.close();
    await old?.drop();
  });

  it('keeps the rows, takes room-lifetime-changed, and still refuses a kind nobody reads', async () => {
    old = await createTestDatabaseUpTo(7);
    db = createDatabase({ url: old.url, maxConnections: 1 });
    const { sql } = db;
    const roomId = await makeRoom(sql);
    await sql`insert into room_events (room_id, change_seq, kind, expires_at)
      values (${roomId}, 1, 'room-expiring', now()), (${roomId}, 2, 'room-vacated', null)`;
    await sql`update rooms set last_change_seq = 2 where id = ${roomId}`;
    const lifetime = createRoomLifetimeRepository(sql);
    const refused = { code: '23514', constraint_name: 'room_events_kind_valid' };
    // Before 0007 the move cannot be recorded. (Written by hand: today's setExpiry needs 0013's column.)
    await expect(sql`insert into room_events (room_id, change_seq, kind, expires_at)
      values (${roomId}, 3, 'room-lifetime-changed', now())`).rejects.toMatchObject(refused);

    await runMigrations(old.url);

    expect(await kinds(sql, roomId)).toEqual(['room-expiring', 'room-vacated']);
    expect(await lifetime.setExpiry(roomId, new Date(Date.now() + 2 * HOUR_MS))).toMatchObject({ status: 'changed', changeSeq: 3 });
    expect(await kinds(sql, roomId)).toEqual(['room-expiring', 'room-vacated', 'room-lifetime-changed']);
    await expect(sql`insert into room_events (room_id, change_seq, kind) values (${roomId}, 4, 'room-renamed')`).rejects.toMatchObject(refused);
  });
});

describe('a room lifetime change in the feed', () => {
  it('numbers each move of the expiry, records the new one, and records nothing for the same time', async ({ sql }) => {
    const roomId = await makeRoom(sql);
    const lifetime = createRoomLifetimeRepository(sql);
    const changes = createRoomChangesRepository(sql);
    const later = new Date(Date.now() + 5 * HOUR_MS);

    const extended = await lifetime.setExpiry(roomId, later);
    expect(extended).toMatchObject({ status: 'changed', expiresAt: later, changeSeq: 1 });
    expect(await lifetime.setExpiry(roomId, later)).toEqual({ status: 'unchanged', expiresAt: later });
    const closed = await lifetime.setExpiry(roomId, 'now');
    if (closed.status !== 'changed') throw new Error(`not closed: ${closed.status}`);
    expect(closed.changeSeq).toBe(2);

    expect((await changes.page(roomId, 0, 10)).map(toRoomChange)).toEqual([
      { roomId, changeSeq: 1, event: 'room-lifetime-changed', payload: { roomId, expiresAt: later.toISOString(), changeSeq: 1 } },
      { roomId, changeSeq: 2, event: 'room-lifetime-changed', payload: { roomId, expiresAt: closed.expiresAt.toISOString(), changeSeq: 2 } },
    ]);
    expect(await changes.lastChangeSeq(roomId)).toBe(2);
  });
});
