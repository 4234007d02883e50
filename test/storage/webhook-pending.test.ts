import { randomUUID } from 'node:crypto';
import type { Sql } from 'postgres';
import { describe, expect } from 'vitest';
import { createRoomChangesRepository, createWebhookCursorsRepository, type Database } from '@chat/db';
import { databaseTest } from '../support/index.ts';

const it = databaseTest({ maxConnections: 2 });

/**
 * Issue 20 §3, docs/webhooks.md: the webhook dispatch finds rooms with undelivered changes
 * through rooms' partial index on `webhook_pending` (migration 0004), not by reading every room
 * and tombstone per endpoint and poll. The flag is raised by a trigger on any change of a room
 * and lowered once every configured endpoint acknowledged the room's last change.
 */
describe('webhook pending rooms', () => {
  let database: Database;
  let owner: string;
  const ROOMS = 20_000;

  it.beforeAll(async ({ database: db }) => {
    database = db;
    owner = randomUUID();
    await database.sql`insert into users (id, nickname) values (${owner}, '방장')`;
    // Many rooms, none with undelivered changes: what a poll must not read one by one.
    await database.sql`
      insert into rooms (id, name, created_by, created_at, expires_at)
      select gen_random_uuid(), 'quiet', ${owner}, now(), now() + interval '1 day' from generate_series(1, ${ROOMS})`;
    await database.sql`analyze rooms`;
  });

  async function room() {
    const id = randomUUID();
    await database.sql`insert into rooms (id, name, created_by, created_at, expires_at)
      values (${id}, 'busy', ${owner}, now(), now() + interval '1 day')`;
    return id;
  }
  /** A change of the room, as every writer makes one: its counter moves under the row's lock. */
  const change = (roomId: string) => database.sql`update rooms set last_change_seq = last_change_seq + 1 where id = ${roomId}`;
  /** The rooms an endpoint's dispatch and deliveries find behind: its lanes, then each lane's backlog. */
  async function behind(sql: Sql, endpointId: string): Promise<string[]> {
    const lanes = await createWebhookCursorsRepository(sql).lanesBehind(endpointId);
    const changes = createRoomChangesRepository(sql);
    const rooms: string[] = [];
    for (const lane of lanes) rooms.push(...(await changes.backlog(endpointId, lane, { rooms: 500, perRoom: 10 })).map((room) => room.roomId));
    return rooms;
  }
  /** What the dispatch does with the configured endpoints: records them, then flags each new one's rooms, batch after batch. */
  async function sync(sql: Sql, endpointIds: string[]): Promise<number> {
    const cursors = createWebhookCursorsRepository(sql);
    let flagged = 0;
    for (const endpointId of (await cursors.syncEndpoints(endpointIds)).syncing) {
      for (let batch = await cursors.flagRooms(endpointId, { batchSize: 5000 }); batch; batch = await cursors.flagRooms(endpointId, { batchSize: 5000 })) {
        flagged += batch.flagged;
      }
    }
    return flagged;
  }
  const pending = async (roomId: string) =>
    (await database.sql<{ webhook_pending: boolean }[]>`select webhook_pending from rooms where id = ${roomId}`)[0]!.webhook_pending;

  it('reads only pending rooms, by index, and lowers the flag once every endpoint caught up', async () => {
    const cursors = createWebhookCursorsRepository(database.sql);
    expect(await sync(database.sql, ['crm', 'moderation'])).toBe(0);
    const busy = await room();
    expect(await pending(busy)).toBe(false);
    await change(busy);
    await change(busy);
    expect(await pending(busy)).toBe(true);

    // The poll's reads, with the scans they made counted in their own transaction.
    // (Before and after: a backend's pending counts may still hold earlier transactions'.)
    const { found, scans } = await database.sql.begin(async (tx) => {
      const counts = async () =>
        (await tx<{ seq_scan: number; idx_scan: number }[]>`
          select seq_scan::int, idx_scan::int from pg_stat_xact_user_tables where relname = 'rooms'`)[0]!;
      const before = await counts();
      const found = await behind(tx as unknown as Sql, 'crm');
      const after = await counts();
      return { found, scans: { seq_scan: after.seq_scan - before.seq_scan, idx_scan: after.idx_scan - before.idx_scan } };
    });
    expect(found).toEqual([busy]);
    expect(scans.seq_scan, `rooms read sequentially among ${ROOMS + 1}`).toBe(0);
    expect(scans.idx_scan).toBeGreaterThan(0);

    // One endpoint caught up is not enough; both are.
    await cursors.advance('crm', [{ roomId: busy, changeSeq: 2 }]);
    expect((await cursors.settleDelivered(['crm', 'moderation'], { after: null, limit: 100 })).settled).toBe(0);
    expect(await behind(database.sql, 'crm')).toEqual([]);
    await cursors.advance('moderation', [{ roomId: busy, changeSeq: 2 }]);
    expect((await cursors.settleDelivered(['crm', 'moderation'], { after: null, limit: 100 })).settled).toBe(1);
    expect(await pending(busy)).toBe(false);

    // The next change raises it again.
    await change(busy);
    expect(await pending(busy)).toBe(true);
    expect(await behind(database.sql, 'moderation')).toEqual([busy]);
  });

  it('starts an endpoint that appears from the beginning of every room', async () => {
    const cursors = createWebhookCursorsRepository(database.sql);
    // Only 'crm' configured: 'moderation' gone past its grace (the settle pass waits for every
    // recorded endpoint).
    await database.sql`delete from webhook_endpoints`;
    await sync(database.sql, ['crm']);
    const settled = await room();
    await change(settled);
    await cursors.advance('crm', [{ roomId: settled, changeSeq: 1 }]);
    await cursors.settleDelivered(['crm'], { after: null, limit: 100_000 });
    expect(await pending(settled)).toBe(false);

    expect(await sync(database.sql, ['crm', 'archive'])).toBeGreaterThan(0);
    expect(await pending(settled)).toBe(true);
    expect(await behind(database.sql, 'archive')).toContain(settled);
    // Seen already: no second flagging.
    expect(await cursors.syncEndpoints(['crm', 'archive'])).toEqual({ added: [], syncing: [], removed: [] });
    expect(await sync(database.sql, ['crm', 'archive'])).toBe(0);
  });

  it('never lowers the flag under a change that commits meanwhile', async () => {
    const cursors = createWebhookCursorsRepository(database.sql);
    // 'solo' alone (the settle pass waits for every recorded endpoint).
    await database.sql`delete from webhook_endpoints`;
    const busy = await room();
    await change(busy);
    await cursors.advance('solo', [{ roomId: busy, changeSeq: 1 }]);
    // A change in flight holds the row: the settle skips it rather than wait or lower it.
    await database.sql.begin(async (tx) => {
      await tx`update rooms set last_change_seq = last_change_seq + 1 where id = ${busy}`;
      expect((await cursors.settleDelivered(['solo'], { after: null, limit: 100 })).settled).toBe(0);
    });
    expect(await pending(busy)).toBe(true);
    expect(await behind(database.sql, 'solo')).toContain(busy);
  });

  it("reads one lane's rooms, and which lanes are behind, through the lane index, not every pending room", async () => {
    // 1,600 pending rooms, about 100 per lane.
    await database.sql`
      insert into rooms (id, name, created_by, created_at, expires_at)
      select gen_random_uuid(), 'laned', ${owner}, now(), now() + interval '1 day' from generate_series(1, 1600)`;
    await database.sql`update rooms set last_change_seq = last_change_seq + 1 where name = 'laned'`;
    await database.sql`analyze rooms`;
    const laneOf = (roomId: string) => parseInt(roomId.slice(-2), 16) % 16;
    const { found, fetched, lanes } = await database.sql.begin(async (tx) => {
      const counts = async () =>
        (await tx<{ idx_tup_fetch: number; seq_scan: number }[]>`
          select idx_tup_fetch::int, seq_scan::int from pg_stat_xact_user_tables where relname = 'rooms'`)[0]!;
      const changes = createRoomChangesRepository(tx as unknown as Sql);
      const before = await counts();
      // Eight times: past the five custom plans, Postgres may switch to the statement's generic plan.
      let rooms: Awaited<ReturnType<typeof changes.backlog>> = [];
      for (let i = 0; i < 8; i++) rooms = await changes.backlog('laned', 3, { rooms: 2000, perRoom: 1 });
      const after = await counts();
      // The dispatch's question, which lanes have a room behind: a probe per lane.
      const lanes = await createWebhookCursorsRepository(tx as unknown as Sql).lanesBehind('laned');
      const afterLanes = await counts();
      return {
        found: rooms.map((room) => room.roomId),
        fetched: { rows: (after.idx_tup_fetch - before.idx_tup_fetch) / 8, seqScans: after.seq_scan - before.seq_scan },
        lanes: { lanes, rows: afterLanes.idx_tup_fetch - after.idx_tup_fetch, seqScans: afterLanes.seq_scan - after.seq_scan },
      };
    });
    // Every room behind for this new endpoint: the 1,600 and the other tests' pending ones.
    const inLane = await database.sql<{ id: string }[]>`select id from rooms where webhook_pending and last_change_seq > 0`;
    const expected = inLane.map((row) => row.id).filter((id) => laneOf(id) === 3);
    expect(found.sort()).toEqual(expected.sort());
    // Its ~100 rooms per read, not the 1,600.
    expect(fetched.seqScans).toBe(0);
    expect(fetched.rows).toBeLessThan(expected.length + 20);
    expect(lanes.lanes).toEqual(Array.from({ length: 16 }, (_, lane) => lane));
    expect(lanes.seqScans).toBe(0);
    expect(lanes.rows).toBeLessThan(16 * 4);
  });

  it('settles pending rooms a slice per pass, going on where the last pass stopped', async () => {
    const cursors = createWebhookCursorsRepository(database.sql);
    // 'slices' alone (the settle pass waits for every recorded endpoint).
    await database.sql`delete from webhook_endpoints`;
    // 1,000 more rooms behind (never delivered) and 30 caught up, among the other tests' pending ones.
    await database.sql`
      insert into rooms (id, name, created_by, created_at, expires_at)
      select gen_random_uuid(), 'sliced', ${owner}, now(), now() + interval '1 day' from generate_series(1, 1030)`;
    await database.sql`update rooms set last_change_seq = 1 where name = 'sliced'`;
    const sliced = (await database.sql<{ id: string }[]>`select id from rooms where name = 'sliced'`).map((row) => row.id);
    const caughtUp = sliced.slice(0, 30);
    // Every room has a cursor for the endpoint, the 30 at their last change.
    await cursors.advance('slices', sliced.map((roomId) => ({ roomId, changeSeq: 0 })));
    await cursors.advance('slices', caughtUp.map((roomId) => ({ roomId, changeSeq: 1 })));
    await database.sql`analyze rooms, webhook_cursors`;
    const pendingBefore = (await database.sql<{ n: number }[]>`select count(*)::int as n from rooms where webhook_pending`)[0]!.n;

    // Each pass reads its slice of 100 through the pending index, not every pending room, and
    // each room's cursors by key (more than five passes: past the custom plans, the generic one).
    const passes: { settled: number; rows: number; seqScans: number }[] = [];
    let after: string | null = null;
    do {
      const pass = await database.sql.begin(async (tx) => {
        const counts = async () =>
          (await tx<{ idx_tup_fetch: number; seq_scan: number; cursor_scans: number }[]>`
            select r.idx_tup_fetch::int, r.seq_scan::int, c.seq_scan::int as cursor_scans
            from pg_stat_xact_user_tables r, pg_stat_xact_user_tables c
            where r.relname = 'rooms' and c.relname = 'webhook_cursors'`)[0]!;
        const before = await counts();
        const result = await createWebhookCursorsRepository(tx as unknown as Sql).settleDelivered(['slices'], { after, limit: 100 });
        const end = await counts();
        return {
          ...result,
          rows: end.idx_tup_fetch - before.idx_tup_fetch,
          seqScans: end.seq_scan - before.seq_scan + end.cursor_scans - before.cursor_scans,
        };
      });
      passes.push({ settled: pass.settled, rows: pass.rows, seqScans: pass.seqScans });
      after = pass.last;
    } while (after !== null && passes.length < 100);

    // One round over every pending room, then back to the first.
    expect(passes).toHaveLength(Math.floor(pendingBefore / 100) + 1);
    expect(passes.reduce((sum, pass) => sum + pass.settled, 0)).toBe(30);
    for (const pass of passes) {
      expect(pass.seqScans).toBe(0);
      // The slice read (index entries of rooms lowered earlier in the run still lead to their
      // old rows until a vacuum), then each of its caught-up rooms locked and updated by key:
      // about the slice, not the ~2,700 pending rooms.
      expect(pass.rows).toBeLessThan(2 * 100);
    }
    expect(await Promise.all(caughtUp.map(pending))).toEqual(caughtUp.map(() => false));
  });
});
