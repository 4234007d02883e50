import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { createMessagesRepository, type Database, type NewMessage } from '@chat/db';
import { databaseTest, seqScansOf } from '../support/index.ts';

const it = databaseTest({ maxConnections: 2 });

/**
 * Issue 17: how the group commit's statement finds its rooms. Locking them as `id = any(<ids>)`,
 * an array the planner cannot see the length of, Postgres read the whole `rooms` table for every
 * batch while the table held fewer than ~1,500 rooms: at 1,000 rooms, a quarter of a small
 * batch's Postgres CPU (BENCHMARKS.md). No sequential scan of `rooms` while a writer's batches
 * run. (The plain form, which every batch without a retry takes; the dedupe form, for batches
 * holding a retry, still updates its rooms through a hash join that reads the table at this
 * size.) Each statement also checks that the senders are members: one probe of room_members'
 * primary key per sender, in both forms, never a read of the whole table.
 */
const ROOMS = 1_000;
const BATCHES = 12;

describe('the batch statement at 1,000 rooms', () => {
  let database: Database;
  let userId: string;
  let roomIds: string[];

  it.beforeAll(async ({ database: db }) => {
    database = db;
    userId = randomUUID();
    await database.sql`insert into users (id, nickname) values (${userId}, '작성자')`;
    roomIds = Array.from({ length: ROOMS }, () => randomUUID());
    await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      select id::uuid, 'plan', ${userId}, 1, now(), now() + interval '1 day'
      from json_array_elements_text(${JSON.stringify(roomIds)}::text::json) as x(id)`;
    // The sender is a member of every room: 1,000 memberships, a table of several pages.
    await database.sql`insert into room_members (room_id, user_id)
      select id::uuid, ${userId} from json_array_elements_text(${JSON.stringify(roomIds)}::text::json) as x(id)`;
    await database.sql`analyze rooms`;
    await database.sql`analyze room_members`;
  });

  const message = (roomId: string, clientMessageId: string | null): NewMessage => ({
    id: randomUUID(),
    roomId,
    userId,
    type: 'text',
    content: 'plan',
    imageUrl: null,
    clientMessageId,
    createdAt: new Date(),
    requireMember: true,
  });

  for (const ids of ['without', 'with'] as const) {
    it(`locks and advances a batch's rooms by their key (${ids} clientMessageIds)`, async ({ testDb }) => {
      const scans = await seqScansOf(testDb.url, ['rooms', 'room_members'], async (sql) => {
        const messages = createMessagesRepository(sql);
        for (let batch = 0; batch < BATCHES; batch++) {
          const batchMessages = [0, 1, 2].map((k) => message(roomIds[(batch * 3 + k * 331) % ROOMS]!, ids === 'with' ? randomUUID() : null));
          const outcomes = await messages.insertBatch(batchMessages);
          expect(outcomes.map((outcome) => outcome.status)).toEqual(['stored', 'stored', 'stored']);
        }
      });
      expect(scans).toEqual({ rooms: 0, room_members: 0 });
    });
  }

  it('checks membership by room_members\' key in the dedupe form too (a batch holding a retry)', async ({ testDb }) => {
    const scans = await seqScansOf(testDb.url, ['room_members'], async (sql) => {
      const messages = createMessagesRepository(sql);
      for (let batch = 0; batch < BATCHES; batch++) {
        const first = message(roomIds[(batch * 7) % ROOMS]!, randomUUID());
        // The same clientMessageId twice in the batch: the dedupe statement at once.
        const outcomes = await messages.insertBatch([first, message(roomIds[(batch * 7 + 500) % ROOMS]!, null), { ...first, id: randomUUID() }]);
        expect(outcomes.map((outcome) => outcome.status)).toEqual(['stored', 'stored', 'duplicate']);
      }
    });
    expect(scans).toEqual({ room_members: 0 });
  });
});
