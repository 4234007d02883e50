import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, describe, expect, inject } from 'vitest';
import { createDatabase, createRoomChangesRepository, createWebhookCursorsRepository, type Database } from '@chat/db';
import { JOB_CATALOG, bullPrefix, type JobPayload } from '@chat/jobs';
import { uniquePrefix } from '@chat/testing';
import { createWorkerMetrics, runWebhookDelivery, runWebhookDispatch, type SettlePass } from '@chat/worker';
import { databaseTest } from '../support/index.ts';

/**
 * docs/webhooks.md, "Changing the endpoints": a rolling update that changes WEBHOOK_ENDPOINTS
 * runs old and new worker replicas side by side on one database and one delivery queue. Each
 * used to delete the endpoints it did not know on every dispatch run: the old replica removed the
 * new endpoint and the new one the old, each re-add started that endpoint's sync from the
 * beginning again, and the old replica's settle pass lowered flags the new endpoint still
 * needed, run after run for the whole rollout. Here two processes (own database clients, own
 * Redis connections, own settle passes) configured [crm, legacy] and [crm, archive] take turns
 * at the dispatch, as the one scheduled run a poll does, and share the delivery queue's jobs,
 * while rooms keep changing; real Postgres, Redis (BullMQ) and HTTP receivers.
 */
const it = databaseTest({ maxConnections: 2 });

const ROOMS = 60;
const SECRET = 'a-webhook-secret-of-some-length';
/** The grace the processes are given; the test makes it pass by ageing `seen_at`, not by waiting. */
const GRACE_MS = 60_000;

type Event = { roomId: string; changeSeq: number };

/** A receiver on loopback that records every event in arrival order and acknowledges it. */
async function startReceiver() {
  const events: Event[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      events.push(...(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: Event[] }).events);
      response.writeHead(204).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    events,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

type Receiver = Awaited<ReturnType<typeof startReceiver>>;

/**
 * What each room's events look like at the receiver: fails on an event that is neither the
 * room's next one nor a repeat (a gap, or out of order), and counts repeats (a cursor reset, or
 * a delivery sent twice). Returns, per room, the last changeSeq received.
 */
function received(receiver: Receiver): { last: Map<string, number>; repeats: number; outOfOrder: string[] } {
  const last = new Map<string, number>();
  let repeats = 0;
  const outOfOrder: string[] = [];
  for (const event of receiver.events) {
    const before = last.get(event.roomId) ?? 0;
    if (event.changeSeq <= before) repeats += 1;
    else if (event.changeSeq === before + 1) last.set(event.roomId, event.changeSeq);
    else outOfOrder.push(`${event.roomId}: ${before} then ${event.changeSeq}`);
  }
  return { last, repeats, outOfOrder };
}

describe('a rolling update that changes the webhook endpoints', () => {
  let sql: Database['sql'];
  let url: string;
  let owner: string;
  let rooms: string[];
  const receivers = new Map<string, Receiver>();
  const closing: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const close of closing.reverse()) await close().catch(() => undefined);
  });

  it.beforeAll(async ({ sql: db, testDb }) => {
    sql = db;
    url = testDb.url;
    owner = randomUUID();
    await sql`insert into users (id, nickname) values (${owner}, '방장')`;
    for (const id of ['crm', 'legacy', 'archive']) {
      const receiver = await startReceiver();
      receivers.set(id, receiver);
      closing.push(receiver.close);
    }
    // Every insert and delete of an endpoint's record, in order.
    await sql.unsafe(`
      create table endpoint_log (n bigserial primary key, op text not null, id text not null);
      create function endpoint_log() returns trigger language plpgsql as $$
      begin
        insert into endpoint_log (op, id) values (lower(tg_op), case when tg_op = 'DELETE' then old.id else new.id end);
        return null;
      end $$;
      create trigger endpoint_log after insert or delete on webhook_endpoints for each row execute function endpoint_log();`);
    rooms = Array.from({ length: ROOMS }, () => randomUUID());
    await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      select id::uuid, 'rollout', ${owner}, 1, now(), now() + interval '1 day'
      from json_array_elements_text(${JSON.stringify(rooms)}::text::json) as x(id)`;
    await change(rooms, 3);
  });

  /** `times` new messages in each room, numbered on in both `seq` and `change_seq`, as a send does (the trigger raises the flag). */
  async function change(ids: string[], times = 1) {
    for (let i = 0; i < times; i++) {
      await sql`
        with r as (
          update rooms set last_seq = last_seq + 1, last_change_seq = last_change_seq + 1
          where id = any(${ids}::uuid[]) returning id, last_seq, last_change_seq, expires_at)
        insert into messages (id, room_id, user_id, type, content, seq, change_seq, created_at, expires_at)
        select gen_random_uuid(), r.id, ${owner}, 'text', 'm' || r.last_seq, r.last_seq, r.last_change_seq, now(), r.expires_at from r`;
    }
  }

  /** A worker process configured with `endpointIds`: its own database client, Redis connection, queue handle and settle pass. */
  function workerProcess(name: string, endpointIds: string[], redisPrefix: string) {
    const database = createDatabase({ url, maxConnections: 2 });
    const redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
    const queue = new Queue(JOB_CATALOG.webhookDelivery.queue, { connection: redis, prefix: bullPrefix(redisPrefix) });
    const endpoints = endpointIds.map((id) => ({ id, url: receivers.get(id)!.url, secret: SECRET }));
    const cursors = createWebhookCursorsRepository(database.sql);
    const settlePass: SettlePass = { after: null };
    const logger = pino({ level: 'silent' });
    const lanesRunning = new Map<string, number>();
    const metrics = createWorkerMetrics();
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      await queue.close();
      redis.disconnect();
      await database.close();
    };
    closing.push(stop);
    return {
      name,
      queue,
      stop,
      dispatch: () =>
        runWebhookDispatch({ endpoints, cursors, deliveries: queue, logger, settlePass, syncBatchSize: 10, syncBudgetMs: 0, endpointGraceMs: GRACE_MS }),
      deliver: (payload: JobPayload<'webhookDelivery'>) =>
        runWebhookDelivery(
          { endpoints, cursors, changes: createRoomChangesRepository(database.sql), logger, metrics, batchSize: 10, timeoutMs: 5000, lanesRunning, lanesPerEndpoint: 8 },
          payload,
        ),
    };
  }
  type WorkerProcess = ReturnType<typeof workerProcess>;

  /** The delivery jobs queued now go to the processes in turn (the queue is shared), each removed once run, as a completed one is. */
  let taken = 0;
  async function deliverQueued(queue: Queue, processes: WorkerProcess[]) {
    for (const job of await queue.getJobs(['waiting', 'prioritized', 'delayed'])) {
      const process = processes[taken++ % processes.length]!;
      await process.deliver(job.data as JobPayload<'webhookDelivery'>);
      await job.remove();
    }
  }

  const endpointRows = async () =>
    sql<{ id: string; created_at: string; synced: boolean }[]>`select id, created_at::text as created_at, synced_at is not null as synced from webhook_endpoints order by id`;
  const log = async () => (await sql<{ op: string; id: string }[]>`select op, id from endpoint_log order by n`).map((row) => `${row.op} ${row.id}`);
  /** Rooms an endpoint has not acknowledged through their last change whose flag is down (its sync not past them): it would never read them again. */
  async function lostFor(endpointId: string): Promise<string[]> {
    const rows = await sql<{ id: string }[]>`
      select r.id from rooms r
      left join webhook_cursors c on c.endpoint_id = ${endpointId} and c.room_id = r.id
      join webhook_endpoints e on e.id = ${endpointId}
      where r.last_change_seq > coalesce(c.delivered_change_seq, 0) and not r.webhook_pending
        and (e.synced_at is not null or (e.flag_from is not null and r.id < e.flag_from))`;
    return rows.map((row) => row.id);
  }
  const cursorsOf = async () =>
    new Map(
      (await sql<{ key: string; seq: number }[]>`select endpoint_id || ':' || room_id as key, delivered_change_seq::int as seq from webhook_cursors`).map((row) => [
        row.key,
        row.seq,
      ]),
    );

  it('converges without deleting, re-adding or re-syncing an endpoint, delivers every change in order, and drops the removed endpoint after the grace', { timeout: 120_000 }, async () => {
    const redisPrefix = uniquePrefix('rollout');
    const old = workerProcess('old', ['crm', 'legacy'], redisPrefix);
    // The old configuration alone, until caught up.
    for (let round = 0; round < 20; round++) {
      await old.dispatch();
      await deliverQueued(old.queue, [old]);
    }
    expect((await endpointRows()).map((row) => [row.id, row.synced])).toEqual([
      ['crm', true],
      ['legacy', true],
    ]);
    expect(received(receivers.get('crm')!).last.get(rooms[0]!)).toBe(3);
    const created = new Map((await endpointRows()).map((row) => [row.id, row.created_at]));
    const logBefore = await log();

    // The rollout: the new replica starts; the two take turns at the dispatch and share the
    // delivery jobs, rooms changing meanwhile.
    const next = workerProcess('new', ['crm', 'archive'], redisPrefix);
    const both = [old, next];
    let cursors = await cursorsOf();
    let archiveSynced = false;
    for (let round = 0; round < 24; round++) {
      const runner = both[(round + 1) % 2]!;
      await runner.dispatch();
      await deliverQueued(runner.queue, both);
      if (round % 3 === 0) await change(rooms.filter((_, index) => index % 4 === round % 4));

      // No endpoint record deleted or re-created: each keeps its sync state.
      expect(await log(), `round ${round} (${runner.name})`).toEqual([...logBefore, 'insert archive']);
      const rows = await endpointRows();
      for (const row of rows) if (created.has(row.id)) expect(row.created_at).toBe(created.get(row.id));
      expect(rows.filter((row) => row.id !== 'archive').every((row) => row.synced)).toBe(true);
      const archive = rows.find((row) => row.id === 'archive')!;
      created.set('archive', archive.created_at);
      // Once synced, never started again.
      if (archiveSynced) expect(archive.synced, `round ${round}`).toBe(true);
      archiveSynced = archive.synced;
      // No flag lowered while an endpoint still needs the room (whichever process settled).
      for (const id of ['crm', 'legacy', 'archive']) expect(await lostFor(id), `${id}, round ${round} (${runner.name})`).toEqual([]);
      // No cursor moved back or vanished.
      const now = await cursorsOf();
      for (const [key, seq] of cursors) expect(now.get(key), key).toBeGreaterThanOrEqual(seq);
      cursors = now;
    }
    expect(archiveSynced).toBe(true);

    // The old replica's last runs (it delivers its own endpoints until it exits), then it exits.
    for (let round = 0; round < 3; round++) {
      await old.dispatch();
      await deliverQueued(old.queue, [old]);
    }
    // The new one goes on alone: 'legacy' is kept for the grace (its
    // rooms stay pending for it: nobody delivers it now, and nobody lowers them without it).
    await old.stop();
    await change(rooms);
    for (let round = 0; round < 20; round++) {
      await next.dispatch();
      await deliverQueued(next.queue, [next]);
    }
    expect((await endpointRows()).map((row) => row.id)).toEqual(['archive', 'crm', 'legacy']);
    expect(await lostFor('legacy')).toEqual([]);
    expect((await sql<{ n: number }[]>`select count(*)::int as n from rooms where webhook_pending`)[0]!.n).toBe(ROOMS);

    // The grace passes (every record seen longer ago than it): the new replica names its own
    // again and drops 'legacy'; then its rooms settle.
    await sql`update webhook_endpoints set seen_at = now() - make_interval(secs => ${GRACE_MS / 1000 + 1})`;
    for (let round = 0; round < 3; round++) {
      await next.dispatch();
      await deliverQueued(next.queue, [next]);
    }
    expect((await endpointRows()).map((row) => row.id)).toEqual(['archive', 'crm']);
    expect(await log()).toEqual([...logBefore, 'insert archive', 'delete legacy']);
    expect((await sql<{ n: number }[]>`select count(*)::int as n from rooms where webhook_pending`)[0]!.n).toBe(0);

    // Every receiver: each room's events in order, none missing, none twice; the kept and the
    // added endpoint have every change, the removed one every change up to the old replica's exit.
    const lastSeq = new Map((await sql<{ id: string; last_change_seq: number }[]>`select id, last_change_seq from rooms`).map((row) => [row.id, Number(row.last_change_seq)]));
    for (const id of ['crm', 'archive', 'legacy']) {
      const { last, repeats, outOfOrder } = received(receivers.get(id)!);
      expect(outOfOrder, id).toEqual([]);
      expect(repeats, id).toBe(0);
      if (id === 'legacy') {
        for (const roomId of rooms) expect(last.get(roomId), `${id} ${roomId}`).toBe(lastSeq.get(roomId)! - 1);
      } else {
        for (const roomId of rooms) expect(last.get(roomId), `${id} ${roomId}`).toBe(lastSeq.get(roomId));
      }
    }
  });

  it('records a new endpoint only after the settle passes in flight, which did not count it, are done: none lowers a room its sync passed by as pending', { timeout: 30_000 }, async () => {
    await sql`delete from webhook_endpoints`;
    const cursors = createWebhookCursorsRepository(sql);
    await cursors.syncEndpoints(['crm']);
    const [room] = rooms;
    await change([room!]);
    const [row] = await sql<{ last: number }[]>`select last_change_seq::int as last from rooms where id = ${room!}`;
    await cursors.advance('crm', [{ roomId: room!, changeSeq: row!.last }]);
    // Another process's settle pass, configured with 'crm' alone, lowers the room and has not
    // committed yet; meanwhile this process records 'late' and runs its sync.
    const other = createDatabase({ url, maxConnections: 2 });
    let commit!: () => void;
    const committing = new Promise<void>((resolve) => (commit = resolve));
    let settled!: () => void;
    const lowered = new Promise<void>((resolve) => (settled = resolve));
    const settle = other.sql.begin(async (tx) => {
      const pass = await createWebhookCursorsRepository(tx as unknown as typeof sql).settleDelivered(['crm'], { after: null, limit: 1000 });
      expect(pass.settled).toBeGreaterThan(0);
      settled();
      await committing;
    });
    try {
      await lowered;
      let synced = false;
      const sync = (async () => {
        for (const endpoint of (await cursors.syncEndpoints(['crm', 'late'])).syncing) {
          while (await cursors.flagRooms(endpoint, { batchSize: 1000 })) {}
        }
        synced = true;
      })();
      // Until the sync is done, or waits (for the settle pass's lock): bounded polling.
      for (let i = 0; i < 500 && !synced; i++) {
        const [waiting] = await sql<{ n: number }[]>`select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`;
        if (waiting!.n > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      commit();
      await settle;
      await sync;
      // 'late' has not had the room: it stays pending for it, and its lane is read.
      const [state] = await sql<{ pending: boolean }[]>`select webhook_pending as pending from rooms where id = ${room!}`;
      expect(state!.pending).toBe(true);
      expect(await cursors.lanesBehind('late')).toContain(parseInt(room!.slice(-2), 16) % 16);
    } finally {
      commit();
      await settle.catch(() => undefined);
      await other.close();
    }
  });
});
