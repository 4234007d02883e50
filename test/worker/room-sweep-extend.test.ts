import { randomUUID } from 'node:crypto';
import pino from 'pino';
import type { Sql, TransactionSql } from 'postgres';
import { afterAll, afterEach, describe, expect } from 'vitest';
import {
  createDatabase,
  createMembershipsRepository,
  createRoomExpiryRepository,
  createRoomLifetimeRepository,
  type Database,
  type LifetimeChange,
} from '@chat/db';
import { roomChannel } from '@chat/protocol';
import { runRoomSweep } from '@chat/worker';
import { sleep } from '@chat/testing';
import { databaseTest } from '../support/index.ts';

/**
 * PROTOCOL §10 / §17: the sweep and the server API's extend meeting at the room's expiry. An
 * extend holds the room's row lock from its "live" decision to its commit (a few statements
 * now; until migration 0013 also the move of every message of the room, seconds for a big
 * room), so it can decide "live" before the expiry and commit after it, while the sweep has
 * already picked the room as due. The room must end either extended and whole (memberships,
 * no `expired_at`, no `room-expired`) or expired the usual way (`room-expired` recorded and
 * announced, memberships purged, `expired_at`), never a mix of both.
 *
 * Each race is made deterministic with a third connection holding a lock across the expiry
 * instant: an advisory lock that a trigger of this test makes the extend's record of its change
 * wait for (the extend then waits inside its transaction, the room already locked and found
 * live) or the room row itself (the extend then waits for the room's lock). Every waiter is
 * seen queued in pg_stat_activity before the holder lets go. Its own database: a sweep reads
 * every due room of it.
 */

const it = databaseTest({ maxConnections: 2 });

/** How far ahead each race's room expires: its setup must be done (and checked done) by then. */
const EXPIRES_IN_MS = 3_000;
const HOUR_MS = 3_600_000;

const clients: Database[] = [];
afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
});

/**
 * What a test leaves in flight (held locks, queries waiting behind them), released and settled
 * after it, passed or failed: a failed assertion must not leave them to the next test or to the
 * database's drop.
 */
const releases: (() => void)[] = [];
const inFlight: Promise<unknown>[] = [];
const cleanups: (() => PromiseLike<unknown>)[] = [];
function track<T>(promise: Promise<T>): Promise<T> {
  inFlight.push(promise.catch(() => undefined));
  return promise;
}
afterEach(async () => {
  for (const release of releases.splice(0)) release();
  await Promise.allSettled(inFlight.splice(0));
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/**
 * The application's client (as the gateway's and the worker's) under a name of its own in
 * pg_stat_activity; a lock timeout longer than the service's 5 s, so a slow machine cannot turn
 * a held lock into an error.
 */
function client(url: string, applicationName: string, maxConnections = 2): Database {
  const database = createDatabase({ url, maxConnections, applicationName, statementTimeoutMs: 20_000 });
  clients.push(database);
  return database;
}

interface Room {
  id: string;
  expiresAt: Date;
  members: string[];
}

/** A room expiring `expiresInMs` from now (Postgres's clock) with one message, and two members unless `empty`. */
async function makeRoom(sql: Sql, expiresInMs: number, { empty = false } = {}): Promise<Room> {
  const owner = randomUUID();
  const guest = randomUUID();
  const id = randomUUID();
  await sql`insert into users (id, nickname) values (${owner}, '방장'), (${guest}, '손님')`;
  const [room] = await sql<{ expires_at: Date | string }[]>`
    insert into rooms (id, name, created_by, created_at, expires_at)
    values (${id}, 'race', ${owner}, now(), date_trunc('milliseconds', clock_timestamp()) + ${expiresInMs}::int * interval '1 millisecond')
    returning expires_at`;
  const memberships = createMembershipsRepository(sql);
  if (!empty) for (const user of [owner, guest]) expect(await memberships.add(id, user, 500)).toMatchObject({ changed: true });
  await sql.begin(async (tx) => {
    await tx`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
      select gen_random_uuid(), r.id, ${owner}, 'text', '안녕', r.last_seq + 1, now(), r.expires_at from rooms r where r.id = ${id}`;
    await tx`update rooms set last_seq = last_seq + 1 where id = ${id}`;
  });
  return { id, expiresAt: new Date(room!.expires_at), members: [owner, guest] };
}

/** Milliseconds until `at` by Postgres's clock (negative once past). */
async function msUntil(sql: Sql, at: Date): Promise<number> {
  const [row] = await sql<{ ms: number }[]>`select (extract(epoch from (${at.toISOString()}::timestamptz - clock_timestamp())) * 1000)::float8 as ms`;
  return row!.ms;
}

/** Sleeps until Postgres's clock is `marginMs` past `at`. */
async function untilPast(sql: Sql, at: Date, marginMs = 100): Promise<void> {
  const left = await msUntil(sql, at);
  if (left + marginMs > 0) await sleep(left + marginMs);
  expect(await msUntil(sql, at)).toBeLessThan(0);
}

/** Bounded poll (400 × 25 ms) until `ready(n)` holds for n = how many backends of `name` wait for a lock. */
async function untilLockWaiters(sql: Sql, name: string, ready: (waiting: number) => boolean): Promise<void> {
  for (let attempt = 0; attempt < 400; attempt++) {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where application_name = ${name} and wait_event_type = 'Lock'`;
    if (ready(row!.n)) return;
    await sleep(25);
  }
  throw new Error(`${name}: never the lock waiters expected`);
}

/** A transaction on its own connection that takes a row lock and keeps it until `release()`. */
function holdLock(url: string, lock: (tx: TransactionSql) => PromiseLike<unknown>): { locked: Promise<void>; release: () => void; done: Promise<unknown> } {
  const holder = client(url, `race-holder-${randomUUID().slice(0, 8)}`, 1);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const lockTaken = new Promise<void>((resolve) => (locked = resolve));
  const done = track(
    holder.sql.begin(async (tx) => {
      await lock(tx);
      locked();
      await released;
    }),
  );
  releases.push(release);
  return { locked: lockTaken, release, done };
}

/** The advisory lock `holdLifetimeRecords` holds. */
const LIFETIME_HOLD = 4_242_013;

/**
 * Holds every lifetime change (extend, close) inside its transaction, once it has locked its room
 * and found it live, at the record of its `room-lifetime-changed` in the feed, until `release()`:
 * a trigger of this test's on that record waits for an advisory lock a third connection keeps.
 * Nothing else (the sweep's records, a join's) waits. The trigger is dropped after the test.
 */
async function holdLifetimeRecords(sql: Sql, url: string): Promise<ReturnType<typeof holdLock>> {
  await sql.unsafe(`create or replace function test_hold_lifetime() returns trigger language plpgsql
                    as $$ begin perform pg_advisory_xact_lock_shared(${LIFETIME_HOLD}); return new; end $$`);
  await sql`create trigger test_hold_lifetime before insert on room_events
            for each row when (new.kind = 'room-lifetime-changed') execute function test_hold_lifetime()`;
  cleanups.push(() => sql`drop trigger if exists test_hold_lifetime on room_events`);
  const holder = holdLock(url, (tx) => tx`select pg_advisory_xact_lock(${LIFETIME_HOLD})`);
  await holder.locked;
  return holder;
}

/** What a sweep told the room (a recorder in place of the bus). */
function recordingEmitter(sent: string[]) {
  const emitter = {
    to: (channel: string) => ({
      emit: async (event: string, payload: unknown) => {
        sent.push(`${channel} ${event} ${JSON.stringify(payload)}`);
        return true;
      },
    }),
    in: (channel: string) => ({
      socketsLeave: async (left: string) => {
        sent.push(`${channel} socketsLeave ${left}`);
      },
    }),
  };
  return emitter as unknown as Parameters<typeof runRoomSweep>[0]['emitter'];
}

function sweep(sql: Sql, sent: string[]) {
  return runRoomSweep({
    expiry: createRoomExpiryRepository(sql),
    emitter: recordingEmitter(sent),
    logger: pino({ level: 'silent' }),
    expiringNoticeMs: 0,
    tombstoneTtlMs: 7 * 86_400_000,
    batchSize: 1000,
    budgetMs: 10_000,
  });
}

async function roomState(sql: Sql, roomId: string) {
  const [room] = await sql<{ expires_at: Date | string; expired_at: Date | string | null; member_count: number }[]>`
    select expires_at, expired_at, member_count from rooms where id = ${roomId}`;
  const [members] = await sql<{ n: number }[]>`select count(*)::int as n from room_members where room_id = ${roomId}`;
  const kinds = await sql<{ kind: string }[]>`select kind from room_events where room_id = ${roomId} order by change_seq`;
  return {
    expiresAt: new Date(room!.expires_at),
    expiredAt: room!.expired_at === null ? null : new Date(room!.expired_at),
    memberCount: room!.member_count,
    members: members!.n,
    kinds: kinds.map((row) => row.kind),
  };
}

describe('an extend that straddles the expiry, next to the sweep', () => {
  it('took the room before it expired and commits after: a sweep that picked the room meanwhile leaves it alone', { timeout: 30_000 }, async ({ sql, testDb }) => {
    const room = await makeRoom(sql, EXPIRES_IN_MS);
    const extendDb = client(testDb.url, 'race-extend');
    const sweepDb = client(testDb.url, 'race-sweep', 4);
    // The extend locks the room, finds it live, and then waits before recording its change.
    const holder = await holdLifetimeRecords(sql, testDb.url);
    const target = new Date(Date.now() + HOUR_MS);
    const extend = track(createRoomLifetimeRepository(extendDb.sql).setExpiry(room.id, target));
    await untilLockWaiters(sql, 'race-extend', (waiting) => waiting === 1);
    expect(await msUntil(sql, room.expiresAt), 'the extend must hold the room before it expires').toBeGreaterThan(0);

    // The room is past its (old) expiry while the extend is still in its transaction: the
    // sweep picks it and waits for the room to record `room-expired`.
    await untilPast(sql, room.expiresAt);
    const sent: string[] = [];
    const swept = track(sweep(sweepDb.sql, sent));
    await untilLockWaiters(sql, 'race-sweep', (waiting) => waiting === 1);
    holder.release();
    await holder.done;

    expect(await extend).toMatchObject({ status: 'changed', expiresAt: target });
    await swept;
    // Extended and whole: without the sweep's stop at "no room-expired recorded", it made the
    // room's sockets leave, purged the memberships and marked the extended room expired.
    expect(sent.filter((line) => line.includes(room.id))).toEqual([]);
    expect(await roomState(sql, room.id)).toEqual({
      expiresAt: target,
      expiredAt: null,
      memberCount: 2,
      members: 2,
      kinds: ['user-joined', 'user-joined', 'room-lifetime-changed'],
    });
  });

  it('purging or marking a room whose extend commits while they wait for it leaves the room alive', { timeout: 30_000 }, async ({ sql, testDb }) => {
    const expiry = createRoomExpiryRepository(sql);
    // Not expired at all: nothing to purge, nothing to mark (the mark's room has no member left).
    const live = await makeRoom(sql, HOUR_MS);
    const liveEmpty = await makeRoom(sql, HOUR_MS, { empty: true });
    expect(await expiry.purgeMembers(live.id, 1000)).toBe(0);
    expect(await expiry.markExpired(liveEmpty.id)).toBe(false);
    expect(await roomState(sql, live.id)).toMatchObject({ expiredAt: null, memberCount: 2, members: 2 });
    expect(await roomState(sql, liveEmpty.id)).toMatchObject({ expiredAt: null, memberCount: 0 });

    // Expired by their old expiry, each with an extend in flight that locked it before: the
    // purge and the mark must check the expiry on the locked row (and so wait for the extend's
    // commit), not on what their snapshot shows. One room with members (the purge's), one whose
    // members are gone (the mark's: it marks only an empty room).
    const room = await makeRoom(sql, EXPIRES_IN_MS);
    const emptyRoom = await makeRoom(sql, EXPIRES_IN_MS, { empty: true });
    // The mark comes only after the sweep's announcement was taken: as if it had been.
    await sql`update rooms set expiry_announced_at = now() where id = ${emptyRoom.id}`;
    const extendDb = client(testDb.url, 'race-extend-2');
    const sweepDb = client(testDb.url, 'race-sweep-2', 4);
    const holder = await holdLifetimeRecords(sql, testDb.url);
    const target = new Date(Date.now() + HOUR_MS);
    const lifetime = createRoomLifetimeRepository(extendDb.sql);
    const extensions = [room, emptyRoom].map((extended) => track(lifetime.setExpiry(extended.id, target)));
    await untilLockWaiters(sql, 'race-extend-2', (waiting) => waiting === 2);
    expect(await msUntil(sql, room.expiresAt), 'the extends must hold the rooms before they expire').toBeGreaterThan(0);
    await untilPast(sql, emptyRoom.expiresAt);

    const sweeping = createRoomExpiryRepository(sweepDb.sql);
    let purgeSettled = false;
    const purged = track(sweeping.purgeMembers(room.id, 1000).finally(() => (purgeSettled = true)));
    const marked = track(sweeping.markExpired(emptyRoom.id));
    // Both queue behind the extends (a purge that does not lock the room has finished by then).
    await untilLockWaiters(sql, 'race-sweep-2', (waiting) => waiting === 2 || (purgeSettled && waiting === 1));
    holder.release();
    await holder.done;

    for (const extended of extensions) expect(await extended).toMatchObject({ status: 'changed', expiresAt: target });
    expect(await purged).toBe(0);
    expect(await marked).toBe(false);
    expect(await roomState(sql, room.id)).toEqual({
      expiresAt: target,
      expiredAt: null,
      memberCount: 2,
      members: 2,
      kinds: ['user-joined', 'user-joined', 'room-lifetime-changed'],
    });
    expect(await roomState(sql, emptyRoom.id)).toEqual({
      expiresAt: target,
      expiredAt: null,
      memberCount: 0,
      members: 0,
      kinds: ['room-lifetime-changed'],
    });
  });

  it('began before the expiry but got the room only after it: refused, and the sweep expires the room whole', { timeout: 30_000 }, async ({ sql, testDb }) => {
    const room = await makeRoom(sql, EXPIRES_IN_MS);
    const extendDb = client(testDb.url, 'race-extend-3');
    const sweepDb = client(testDb.url, 'race-sweep-3', 4);
    // Something else (a send batch, say) holds the room across its expiry.
    const holder = holdLock(testDb.url, (tx) => tx`select 1 from rooms where id = ${room.id} for update`);
    await holder.locked;
    const extend = track(createRoomLifetimeRepository(extendDb.sql).setExpiry(room.id, new Date(Date.now() + HOUR_MS)));
    await untilLockWaiters(sql, 'race-extend-3', (waiting) => waiting === 1);
    // Its transaction began (its now()) before the expiry.
    expect(await msUntil(sql, room.expiresAt), 'the extend must start before the room expires').toBeGreaterThan(0);
    await untilPast(sql, room.expiresAt);
    const sent: string[] = [];
    const swept = track(sweep(sweepDb.sql, sent));
    await untilLockWaiters(sql, 'race-sweep-3', (waiting) => waiting === 1);
    holder.release();
    await holder.done;

    // The room had expired when the extend got it: 'room-expired' (the route's 410), as for
    // any expired room, instead of an hour more for a room the sweep is emptying.
    expect(await extend).toEqual({ status: 'room-expired' } satisfies LifetimeChange);
    await swept;
    const state = await roomState(sql, room.id);
    expect(state).toMatchObject({ expiresAt: room.expiresAt, memberCount: 0, members: 0, kinds: ['user-joined', 'user-joined', 'room-expired'] });
    expect(state.expiredAt).not.toBeNull();
    const channel = roomChannel(room.id);
    expect(sent).toEqual([
      `${channel} room-expired ${JSON.stringify({ roomId: room.id, changeSeq: 3 })}`,
      `${channel} socketsLeave ${channel}`,
    ]);
  });

  it('refuses a room the sweep has reached, whatever its expires_at says', async ({ sql }) => {
    const lifetime = createRoomLifetimeRepository(sql);
    // What the race above left behind before this fix: marked expired, members purged, and an
    // expiry an hour ahead.
    const marked = await makeRoom(sql, HOUR_MS);
    await sql`delete from room_members where room_id = ${marked.id}`;
    await sql`update rooms set expired_at = now(), member_count = 0 where id = ${marked.id}`;
    // `room-expired` recorded (the sweep's first step), the rest not done yet.
    const recorded = await makeRoom(sql, HOUR_MS);
    await sql`with bumped as (update rooms set last_change_seq = last_change_seq + 1 where id = ${recorded.id} returning id, last_change_seq)
      insert into room_events (room_id, change_seq, kind) select id, last_change_seq, 'room-expired' from bumped`;

    for (const room of [marked, recorded]) {
      const before = await roomState(sql, room.id);
      expect(await lifetime.setExpiry(room.id, new Date(Date.now() + 2 * HOUR_MS))).toEqual({ status: 'room-expired' });
      expect(await lifetime.setExpiry(room.id, 'now')).toEqual({ status: 'room-expired' });
      expect(await roomState(sql, room.id)).toEqual(before);
    }
  });
});

/**
 * Two sweeps at once (two worker replicas: a sweep that outlasts SWEEP_INTERVAL_MS has the next
 * run taken by another replica while it goes on) reach the same due room. `room-expired` is
 * recorded once; it must be announced once too (PROTOCOL §10), and the room's sockets made to
 * leave only after that announcement, by the sweep that made it: a second leave racing the first
 * sweep's announcement could take the members out before they hear it.
 */
describe('two sweeps at once on one due room', () => {
  it('announce `room-expired` once, the announcing sweep making the sockets leave after it', { timeout: 30_000 }, async ({ sql, testDb }) => {
    const room = await makeRoom(sql, 1000);
    await untilPast(sql, room.expiresAt);
    // Both sweeps pick the room and queue on its row, held meanwhile (a send, say).
    const holder = holdLock(testDb.url, (tx) => tx`select 1 from rooms where id = ${room.id} for update`);
    await holder.locked;
    const replicas = [client(testDb.url, 'twin-sweep-a', 4), client(testDb.url, 'twin-sweep-b', 4)];
    const sent: string[][] = [[], []];
    const sweeps = replicas.map((replica, index) => track(sweep(replica.sql, sent[index]!)));
    await untilLockWaiters(sql, 'twin-sweep-a', (waiting) => waiting === 1);
    await untilLockWaiters(sql, 'twin-sweep-b', (waiting) => waiting === 1);
    holder.release();
    await holder.done;
    await Promise.all(sweeps);

    const state = await roomState(sql, room.id);
    expect(state).toMatchObject({ members: 0, kinds: ['user-joined', 'user-joined', 'room-expired'] });
    expect(state.expiredAt).not.toBeNull();
    const channel = roomChannel(room.id);
    const announced = [`${channel} room-expired ${JSON.stringify({ roomId: room.id, changeSeq: 3 })}`, `${channel} socketsLeave ${channel}`];
    // One of the two announced and emptied the room; the other, finding it recorded a moment
    // ago by a sweep still at it, told the room nothing.
    expect([...sent].sort((a, b) => b.length - a.length)).toEqual([announced, []]);
  });

  it('a recorded expiry whose sweep died before announcing it is announced by a later sweep', { timeout: 30_000 }, async ({ sql, testDb }) => {
    const room = await makeRoom(sql, 1000);
    await untilPast(sql, room.expiresAt);
    // What a sweep killed between its record and its announcement left, a while ago.
    await sql`with bumped as (update rooms set last_change_seq = last_change_seq + 1 where id = ${room.id} returning id, last_change_seq)
      insert into room_events (room_id, change_seq, kind, created_at) select id, last_change_seq, 'room-expired', now() - interval '1 minute' from bumped`;
    const sent: string[] = [];
    await sweep(client(testDb.url, 'late-sweep', 2).sql, sent);
    const channel = roomChannel(room.id);
    expect(sent).toEqual([`${channel} room-expired ${JSON.stringify({ roomId: room.id, changeSeq: 3 })}`, `${channel} socketsLeave ${channel}`]);
    expect(await roomState(sql, room.id)).toMatchObject({ members: 0, kinds: ['user-joined', 'user-joined', 'room-expired'] });
  });
});
