import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDatabase,
  createMessagesRepository,
  createRoomChangesRepository,
  type Database,
  type NewMessage,
} from '@chat/db';
import { sleep } from '@chat/testing';
import { postgresServerUnavailable, startPostgresPair, type LocalPostgresPair } from '@chat/testing/postgres-servers';

/**
 * The change feed serves a change only once it is durable. The group commit's early lock
 * release commits a batch asynchronously and waits for a durability barrier behind it before
 * anyone is told; the batch is visible to other sessions in between. Here that moment is held
 * open: the primary's synchronous standby is stopped, so the batch's barrier (and every
 * synchronous commit) waits, while the batch itself is already committed and readable. A feed
 * page or a webhook backlog read then must wait too: served at that moment and lost in a
 * failover, its `changeSeq` would go to another change, which the reader would drop as one it
 * has seen.
 */
const unavailable = postgresServerUnavailable();
if (unavailable) console.warn(`feed-durability.test.ts skipped: ${unavailable}`);

/** Longer than any read of a one-message feed takes on a loaded machine. */
const HELD_MS = 1500;

describe.skipIf(unavailable !== null)('the change feed serves only durable changes', () => {
  let pair: LocalPostgresPair;
  let database: Database;
  let writer: Database;
  let userId: string;
  let roomId: string;

  beforeAll(async () => {
    pair = await startPostgresPair();
    const url = await pair.migratedDatabase('chat_feed_durability');
    database = createDatabase({ url, maxConnections: 4 });
    writer = createDatabase({ url, maxConnections: 1, synchronousCommit: 'off' });
    userId = randomUUID();
    roomId = randomUUID();
    await database.sql`insert into users (id, nickname) values (${userId}, '작성자')`;
    // webhook_pending: the room is in the webhook backlog once it has a change.
    await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at, webhook_pending)
      values (${roomId}, 'durable', ${userId}, 1, now(), now() + interval '1 day', true)`;
  }, 120_000);

  afterAll(async () => {
    await writer?.close();
    await database?.close();
    await pair?.close();
  }, 60_000);

  it('a batch committed but not yet durable is read by neither the feed nor the webhook backlog until it is', { timeout: 90_000 }, async () => {
    const messages = createMessagesRepository(database.sql, { batchConnection: writer });
    const changes = createRoomChangesRepository(database.sql);
    const message: NewMessage = { id: randomUUID(), roomId, userId, type: 'text', content: '아직', imageUrl: null, clientMessageId: null, createdAt: new Date(), requireMember: false };
    // The lane of the room's webhook deliveries: the last byte of its id, modulo 16.
    const lane = Number.parseInt(roomId.at(-1)!, 16);

    await pair.stopStandby();
    let standbyBack = false;
    try {
      const written = messages.insertBatch([message], { releaseLocksEarly: true });
      // Committed (asynchronously) and visible to everyone, its barrier still waiting.
      await expect.poll(async () => (await database.sql`select 1 from messages where id = ${message.id}`).length, { timeout: 10_000 }).toBe(1);

      const settled = { page: false, backlog: false, written: false };
      const page = changes.page(roomId, 0, 10).finally(() => (settled.page = true));
      const backlog = changes.backlog('endpoint-1', lane, { rooms: 10, perRoom: 10 }).finally(() => (settled.backlog = true));
      void written.finally(() => (settled.written = true));
      await sleep(HELD_MS);
      expect(settled).toEqual({ page: false, backlog: false, written: false });

      await pair.startStandby();
      standbyBack = true;
      const [outcomes, read, pending] = await Promise.all([written, page, backlog]);
      expect(outcomes).toEqual([expect.objectContaining({ status: 'stored' })]);
      expect(read.map((change) => [change.event, change.changeSeq, change.message?.id])).toEqual([['new-message', 1, message.id]]);
      expect(pending.map((room) => [room.roomId, room.rows.map((row) => row.message?.id)])).toEqual([[roomId, [message.id]]]);
    } finally {
      if (!standbyBack) await pair.startStandby();
    }
  });

  it('an empty read waits for nothing', async () => {
    const changes = createRoomChangesRepository(database.sql);
    await pair.stopStandby();
    try {
      // Nothing after the last change: no barrier, so no wait for the missing standby.
      const read = await Promise.race([changes.page(roomId, 1_000, 10), sleep(HELD_MS).then(() => 'held' as const)]);
      expect(read).toEqual([]);
    } finally {
      await pair.startStandby();
    }
  });
});
