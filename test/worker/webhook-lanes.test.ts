import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, describe, expect } from 'vitest';
import { createRoomChangesRepository, createWebhookCursorsRepository, type Database } from '@chat/db';
import { createWorkerMetrics, runWebhookDelivery } from '@chat/worker';
import { databaseTest } from '../support/index.ts';

/**
 * docs/webhooks.md at the size of a busy cluster: an endpoint's deliveries go by lane, not by
 * room. With one delivery job and one POST per room behind, 1,000 rooms that each changed in
 * the last second cost the worker 1,000 jobs, ~3,000 statements and 1,000 POSTs a second
 * (measured with `pnpm bench:probe --webhook --rooms 1000`: 111 POSTs a second of 9.9 events
 * each, the worker at 25% of a core). A lane's run reads all of its rooms behind in one
 * statement and packs their events into full POSTs, each room's in order.
 */
const ROOMS = 320;
const PER_ROOM = 3;
const BIG_ROOM = 120;
const BATCH = 50;

const it = databaseTest({ maxConnections: 2 });
let sql: Database['sql'];
let receiver: Server;
let url: string;
const posts: { roomId: string; changeSeq: number }[][] = [];

it.beforeAll(async ({ sql: db }) => {
  // The application's client: it reads int8 as numbers, as the worker does.
  sql = db;
  receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      posts.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: { roomId: string; changeSeq: number }[] }).events);
      response.writeHead(204).end();
    });
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});

afterAll(async () => {
  receiver?.close();
});

/** Rooms with `messages` messages each, numbered 1… in both `seq` and `change_seq`. */
async function seedRooms(owner: string, count: number, messages: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID());
  await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
    select id::uuid, 'lanes', ${owner}, 1, now(), now() + interval '1 day'
    from json_array_elements_text(${JSON.stringify(ids)}::text::json) as x(id)`;
  await sql`insert into messages (id, room_id, user_id, type, content, seq, change_seq, created_at, expires_at)
    select gen_random_uuid(), r.id, ${owner}, 'text', 'm' || g, g, g, now(), r.expires_at
    from rooms r cross join generate_series(1, ${messages}) g where r.id = any(${ids}::uuid[])`;
  // As a send does: the counters move under the row, and the trigger raises webhook_pending.
  await sql`update rooms set last_seq = ${messages}, last_change_seq = ${messages} where id = any(${ids}::uuid[])`;
  return ids;
}

describe('webhook delivery lanes', () => {
  it('delivers many rooms in few full POSTs, each room in order, each event once', { timeout: 60_000 }, async () => {
    const owner = randomUUID();
    await sql`insert into users (id, nickname) values (${owner}, '방장')`;
    const small = await seedRooms(owner, ROOMS, PER_ROOM);
    const [big] = await seedRooms(owner, 1, BIG_ROOM);
    await sql`analyze rooms, messages`;

    const deps = {
      endpoints: [{ id: 'lanes', url, secret: 'a-webhook-secret-of-some-length' }],
      cursors: createWebhookCursorsRepository(sql),
      changes: createRoomChangesRepository(sql),
      logger: pino({ level: 'silent' }),
      metrics: createWorkerMetrics(),
      batchSize: BATCH,
      timeoutMs: 5000,
      lanesRunning: new Map<string, number>(),
      lanesPerEndpoint: 1,
    };
    const lanes = await deps.cursors.lanesBehind('lanes');
    // 321 random ids fill every one of the 16 lanes (each is empty with odds of 1e-9).
    expect(lanes).toEqual(Array.from({ length: 16 }, (_, lane) => lane));
    let delivered = 0;
    for (const lane of lanes) delivered += (await runWebhookDelivery(deps, { endpointId: 'lanes', lane })).delivered;

    const total = ROOMS * PER_ROOM + BIG_ROOM;
    expect(delivered).toBe(total);
    const events = posts.flat();
    expect(events).toHaveLength(total);
    // Each room's events arrive once, in changeSeq order, whatever POSTs they share.
    const byRoom = new Map<string, number[]>();
    for (const event of events) byRoom.set(event.roomId, [...(byRoom.get(event.roomId) ?? []), event.changeSeq]);
    for (const roomId of small) expect(byRoom.get(roomId)).toEqual([1, 2, 3]);
    expect(byRoom.get(big!)).toEqual(Array.from({ length: BIG_ROOM }, (_, i) => i + 1));
    // Full POSTs: one per room behind (as before) would be 321; a lane ends with one part-full POST at most.
    expect(posts.every((post) => post.length <= BATCH)).toBe(true);
    expect(posts.length).toBeLessThanOrEqual(Math.ceil(total / BATCH) + lanes.length);
    // Each acknowledged POST is observed once in the lag histogram: the age of its oldest change.
    const lag = await deps.metrics.webhookLag.get();
    const count = lag.values.find((value) => value.metricName === 'chat_worker_webhook_lag_seconds_count' && value.labels.webhook === 'lanes');
    const sum = lag.values.find((value) => value.metricName === 'chat_worker_webhook_lag_seconds_sum' && value.labels.webhook === 'lanes');
    expect(count?.value).toBe(posts.length);
    expect(sum?.value).toBeGreaterThan(0);
    // Every cursor at its room's last change; nothing left to read or to send.
    expect(await sql`select count(*)::int as n from webhook_cursors where endpoint_id = 'lanes' and delivered_change_seq = ${PER_ROOM}`).toEqual([{ n: ROOMS }]);
    expect(await deps.cursors.lanesBehind('lanes')).toEqual([]);
    const before = posts.length;
    for (const lane of lanes) expect(await runWebhookDelivery(deps, { endpointId: 'lanes', lane })).toEqual({ delivered: 0 });
    expect(posts.length).toBe(before);
  });
});
