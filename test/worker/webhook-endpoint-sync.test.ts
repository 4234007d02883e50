import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import pino from 'pino';
import postgres from 'postgres';
import { afterAll, describe, expect } from 'vitest';
import { createDatabase, createWebhookCursorsRepository, runMigrations, type Database, type WebhookCursorsRepository } from '@chat/db';
import { createTestDatabaseUpTo, type TestDatabase } from '@chat/testing';
import { runWebhookDispatch } from '@chat/worker';
import { databaseTest } from '../support/index.ts';

/**
 * docs/webhooks.md, an endpoint that appears: it starts from the beginning of every room, so
 * every room with changes is flagged `webhook_pending` for it. Flagging them all in one
 * statement, in the transaction that recorded the endpoint, outlasted the worker's 5 s
 * statement_timeout at 300,000 rooms: the endpoint was never recorded, and the dispatch, which
 * began with it, failed on every poll for every endpoint. Here the rooms are flagged a batch per
 * run (a batch size of 50 stands for the worker's 2,000), the sync goes on across runs and
 * restarts, loses no room created or changed meanwhile, and the endpoints already there are
 * dispatched on every run whatever the sync does.
 */
const it = databaseTest({ maxConnections: 2 });
const BATCH = 50;

const laneOf = (roomId: string) => parseInt(roomId.slice(-2), 16) % 16;
const endpoint = (id: string) => ({ id, url: 'http://127.0.0.1:9/unused', secret: 'a-webhook-secret-of-some-length' });

/** A stand-in for the webhook-delivery queue: the jobs each run added. */
function deliveryQueue() {
  const added: { endpointId: string; lane: number }[] = [];
  const queue = {
    async addBulk(jobs: { data: { endpointId: string; lane: number } }[]) {
      added.push(...jobs.map((job) => job.data));
      return [];
    },
  };
  return { added, queue: queue as unknown as Queue };
}

describe('a new webhook endpoint is synced a batch at a time', () => {
  let database: Database;
  let url: string;
  let owner: string;

  it.beforeAll(async ({ database: db, testDb }) => {
    database = db;
    url = testDb.url;
    owner = randomUUID();
    await database.sql`insert into users (id, nickname) values (${owner}, '방장')`;
  });

  /** One run of the webhook dispatch, new endpoints' rooms flagged a batch of BATCH per run; what it queued, and how it ended. */
  async function dispatch(deps: { endpoints: string[]; cursors: WebhookCursorsRepository; settlePass: { after: string | null } }) {
    const { added, queue } = deliveryQueue();
    const result = await runWebhookDispatch({
      endpoints: deps.endpoints.map(endpoint),
      cursors: deps.cursors,
      deliveries: queue,
      logger: pino({ level: 'silent' }),
      settlePass: deps.settlePass,
      syncBatchSize: BATCH,
      syncBudgetMs: 0,
    }).then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
    return { result, added };
  }
  /** 'crm', configured before there were rooms (and so synced at once). */
  async function configuredBefore() {
    const first = await dispatch({ endpoints: ['crm'], cursors: createWebhookCursorsRepository(database.sql), settlePass: { after: null } });
    expect(first.result.ok).toBe(true);
  }

  /**
   * `count` rooms, `changes` changes each, that endpoint 'crm' has acknowledged and the settle
   * pass has lowered (tombstones too, when `expired`): what a new endpoint's sync must flag.
   */
  async function settledRooms(count: number, changes: number, options: { expired?: boolean } = {}): Promise<string[]> {
    const rows = await database.sql<{ id: string }[]>`
      insert into rooms (id, name, created_by, created_at, expires_at, expired_at, last_change_seq, webhook_pending)
      select gen_random_uuid(), 'settled', ${owner}, now(), now() + interval '1 day',
             ${options.expired ? database.sql`now()` : database.sql`null`}, ${changes}, false
      from generate_series(1, ${count}) returning id`;
    const ids = rows.map((row) => row.id);
    if (changes > 0) await createWebhookCursorsRepository(database.sql).advance('crm', ids.map((roomId) => ({ roomId, changeSeq: changes })));
    return ids;
  }
  /** A room with one change 'crm' has not had: crm's dispatch queues its lane. */
  async function busyRoom(id = randomUUID()): Promise<string> {
    await database.sql`insert into rooms (id, name, created_by, created_at, expires_at) values (${id}, 'busy', ${owner}, now(), now() + interval '1 day')`;
    await change(id);
    return id;
  }
  /** A change of the room, as every writer makes one: its counter moves under the row's lock (the trigger raises the flag). */
  const change = (roomId: string) => database.sql`update rooms set last_change_seq = last_change_seq + 1 where id = ${roomId}`;
  const sync = async (endpointId: string) =>
    (await database.sql<{ flag_from: string | null; synced: boolean }[]>`
      select flag_from, synced_at is not null as synced from webhook_endpoints where id = ${endpointId}`)[0];
  /** Rooms with changes whose flag is down: a new endpoint would never read them. */
  const unflagged = async () =>
    (await database.sql<{ id: string }[]>`select id from rooms where last_change_seq > 0 and not webhook_pending order by id`).map((row) => row.id);
  const pending = async (roomId: string) =>
    (await database.sql<{ webhook_pending: boolean }[]>`select webhook_pending from rooms where id = ${roomId}`)[0]!.webhook_pending;

  it('flags the rooms across runs, resumes after a restart and a failed batch, loses none changed meanwhile, and dispatches the others on every run', async () => {
    await configuredBefore();
    await settledRooms(160, 1);
    await settledRooms(20, 0);
    await settledRooms(20, 2, { expired: true });
    const busy = await busyRoom();
    const total = (await database.sql<{ n: number }[]>`select count(*)::int as n from rooms`)[0]!.n;
    const byId = (await database.sql<{ id: string }[]>`select id from rooms order by id`).map((row) => row.id);

    let cursors: WebhookCursorsRepository = createWebhookCursorsRepository(database.sql);
    let settlePass = { after: null as string | null };
    const run = () => dispatch({ endpoints: ['crm', 'archive'], cursors, settlePass });

    // Run 1: the first batch of 50 rooms in id order, no more.
    const first = await run();
    expect(first.result.ok).toBe(true);
    expect(first.added).toContainEqual({ endpointId: 'crm', lane: laneOf(busy) });
    const left = await unflagged();
    expect(left.length).toBeGreaterThan(100);
    expect(left.every((id) => id >= byId[BATCH]!)).toBe(true);
    expect(await sync('archive')).toEqual({ flag_from: byId[BATCH], synced: false });

    // Meanwhile, behind where the sync stands: a room created (its id before every other's) and
    // changed; a room without changes changing; a flagged room 'crm' acknowledges and the settle
    // pass looks at. Ahead of it: a room changing before the sync reaches it.
    const early = await busyRoom('00000000-0000-4000-8000-000000000001');
    const [quiet] = await database.sql<{ id: string }[]>`
      select id from rooms where last_change_seq = 0 and id < ${byId[BATCH]!} order by id limit 1`;
    if (quiet) await change(quiet.id);
    const [flaggedEarlier] = await database.sql<{ id: string; last_change_seq: number }[]>`
      select id, last_change_seq from rooms where webhook_pending and id < ${byId[BATCH]!} and id <> ${busy} order by id limit 1`;
    await cursors.advance('crm', [{ roomId: flaggedEarlier!.id, changeSeq: flaggedEarlier!.last_change_seq }]);
    await change(left.at(-1)!);

    // The worker restarts (a new settle pass, a new client of the same database); then one
    // batch fails. The others are dispatched all the same; the sync stays where it stood.
    cursors = createWebhookCursorsRepository(database.sql);
    settlePass = { after: null };
    const stood = await sync('archive');
    const real = cursors;
    const fail = (what: string) => async () => Promise.reject(new Error(what));
    cursors = { ...real, flagRooms: fail('the batch failed') };
    const failedBatch = await run();
    expect(failedBatch.result.ok).toBe(false);
    expect(failedBatch.added).toContainEqual({ endpointId: 'crm', lane: laneOf(busy) });
    expect(await sync('archive')).toEqual(stood);
    // And when the first endpoint's dispatch fails too, the second's still goes out: 'archive'
    // is behind in the lanes of the rooms flagged so far.
    cursors = { ...real, flagRooms: fail('the batch failed'), lanesBehind: async (id) => (id === 'crm' ? fail('crm failed')() : real.lanesBehind(id)) };
    const failedBoth = await run();
    expect(failedBoth.result.ok).toBe(false);
    expect((failedBoth.result as { error: AggregateError }).error.errors).toHaveLength(2);
    expect(failedBoth.added.map((job) => job.endpointId)).toContain('archive');
    expect(failedBoth.added.map((job) => job.endpointId)).not.toContain('crm');
    expect(await sync('archive')).toEqual(stood);
    cursors = real;

    // Run after run until synced: one batch a run.
    let runs = 1;
    while (!(await sync('archive'))!.synced && runs < 20) {
      const next = await run();
      runs += 1;
      expect(next.result.ok).toBe(true);
      expect(next.added).toContainEqual({ endpointId: 'crm', lane: laneOf(busy) });
    }
    expect(runs).toBe(Math.ceil(total / BATCH));
    expect(await sync('archive')).toEqual({ flag_from: null, synced: true });

    // Not one room with changes left behind, whatever changed meanwhile; 'archive' has every
    // one of them to read (its lanes), from the first change.
    expect(await unflagged()).toEqual([]);
    for (const roomId of [early, flaggedEarlier!.id, ...(quiet ? [quiet.id] : [])]) expect(await pending(roomId)).toBe(true);
    const lanes = new Set((await database.sql<{ id: string }[]>`select id from rooms where last_change_seq > 0`).map((row) => laneOf(row.id)));
    expect(await cursors.lanesBehind('archive')).toEqual([...lanes].sort((a, b) => a - b));

    // Synced: the next runs flag nothing more.
    const after = await run();
    expect(after.result).toEqual({ ok: true, value: { queued: expect.any(Number), flagged: 0 } });
    expect(await cursors.syncEndpoints(['crm', 'archive'])).toEqual({ added: [], syncing: [], removed: [] });
  });

  it('never waits for a locked room: the sync flags around it and stays at it, the others are dispatched, and it goes on once the lock is gone', async () => {
    await database.sql`delete from rooms`;
    await database.sql`delete from webhook_endpoints`;
    await configuredBefore();
    await settledRooms(120, 1);
    const busy = await busyRoom();
    const byId = (await database.sql<{ id: string }[]>`select id from rooms order by id`).map((row) => row.id);
    // Locked by a transaction that goes on (a send in flight, or one stuck): inside the first batch.
    const locked = byId.slice(10).find((id) => id !== busy)!;
    // The worker's client, with a lock_timeout of 1 s instead of 5 (the one statement of old
    // waited for the lock, then failed the whole dispatch).
    const workerDb = createDatabase({ url, maxConnections: 2, statementTimeoutMs: 1000 });
    const locker = postgres(url, { max: 1, onnotice: () => {} });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let holding!: () => void;
    const held = new Promise<void>((resolve) => (holding = resolve));
    const lock = locker.begin(async (tx) => {
      await tx`select id from rooms where id = ${locked} for update`;
      holding();
      await released;
    });
    try {
      await held;
      const cursors = createWebhookCursorsRepository(workerDb.sql);
      const settlePass = { after: null as string | null };
      const run = () => dispatch({ endpoints: ['crm', 'audit'], cursors, settlePass });
      for (let i = 0; i < 2; i++) {
        const { result, added } = await run();
        expect(added).toContainEqual({ endpointId: 'crm', lane: laneOf(busy) });
        // No lock timeout: nothing waited for the lock.
        expect(result.ok).toBe(true);
        // The sync stays at the locked room, the others of its batch flagged.
        expect(await pending(locked)).toBe(false);
        expect((await unflagged()).filter((id) => id < byId[BATCH]!)).toEqual([locked]);
        expect(await sync('audit')).toEqual({ flag_from: locked, synced: false });
      }
      release();
      await lock;
      let runs = 0;
      while (!(await sync('audit'))!.synced && runs < 10) {
        const { result, added } = await run();
        runs += 1;
        expect(result.ok).toBe(true);
        expect(added).toContainEqual({ endpointId: 'crm', lane: laneOf(busy) });
      }
      expect(await sync('audit')).toEqual({ flag_from: null, synced: true });
      expect(await unflagged()).toEqual([]);
      expect(await pending(locked)).toBe(true);
    } finally {
      release();
      await lock.catch(() => undefined);
      await locker.end();
      await workerDb.close();
    }
  });
});

describe('migration 0008 on a database that already has webhook endpoints', () => {
  let old: TestDatabase | undefined;
  let db: Database | undefined;
  afterAll(async () => {
    await db?.close();
    await old?.drop();
  });

  it('counts an endpoint recorded before it as synced (its rooms were flagged with its record), and syncs one that appears after it', async () => {
    old = await createTestDatabaseUpTo(8);
    db = createDatabase({ url: old.url, maxConnections: 1 });
    await db.sql`insert into webhook_endpoints (id) values ('crm')`;
    await runMigrations(old.url);
    expect(await createWebhookCursorsRepository(db.sql).syncEndpoints(['crm', 'archive'])).toEqual({ added: ['archive'], syncing: ['archive'], removed: [] });
  });
});
