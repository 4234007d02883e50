import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, createMessagesRepository, type BatchOutcome, type Database, type NewMessage } from '@chat/db';
import { createTestDatabase, type TestDatabase } from '@chat/testing';

/**
 * The group-commit statement has two forms: batches that hold no retry number messages from
 * their place in the batch (after one index probe per clientMessageId, which finds none); a
 * batch with a retry (stored before, or twice in the batch) goes through the dedupe form.
 * Both must give the same answers: gap-free seq per room in batch order, nothing for an
 * expired room, room-missing for an unknown one, the original for a retry, and no deadlock
 * between pods.
 */
describe('the batch statement', () => {
  let testDb: TestDatabase;
  let database: Database;
  /** A group-commit writer's own connection, as the gateway opens it: asynchronous commit. */
  let writerDatabase: Database;
  let userId: string;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = createDatabase({ url: testDb.url, maxConnections: 6 });
    writerDatabase = createDatabase({ url: testDb.url, maxConnections: 1, synchronousCommit: 'off' });
    userId = randomUUID();
    await database.sql`insert into users (id, nickname) values (${userId}, '작성자')`;
  });
  afterAll(async () => {
    await database.close();
    await writerDatabase.close();
    await testDb.drop();
  });

  async function room(options: { expired?: boolean; lastSeq?: number } = {}) {
    const id = randomUUID();
    await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at, last_seq)
      values (${id}, 'batch', ${userId}, 1, now() - interval '2 days',
              ${options.expired ? database.sql`now() - interval '1 minute'` : database.sql`now() + interval '1 day'`}, ${options.lastSeq ?? 0})`;
    return id;
  }
  /** A message needing no membership (the rooms above have none), as a server API publish. */
  const message = (roomId: string, content: string, clientMessageId: string | null = null, sender = userId, requireMember = false): NewMessage => ({
    id: randomUUID(),
    roomId,
    userId: sender,
    type: 'text',
    content,
    imageUrl: null,
    clientMessageId,
    createdAt: new Date(),
    requireMember,
  });
  const summary = (outcomes: BatchOutcome[]) =>
    outcomes.map((o) => (o.status === 'stored' || o.status === 'duplicate' ? `${o.status} ${o.message.content} #${o.message.seq}` : o.status));

  const repositories = {
    'on the pool': { make: () => createMessagesRepository(database.sql), write: {} },
    'with early lock release': { make: () => createMessagesRepository(database.sql, { batchConnection: writerDatabase }), write: {} },
    'on the writer connection, committing synchronously': {
      make: () => createMessagesRepository(database.sql, { batchConnection: writerDatabase }),
      write: { releaseLocksEarly: false },
    },
  };
  for (const [how, { make: makeRepository, write }] of Object.entries(repositories))
  for (const form of ['without clientMessageId', 'with a clientMessageId'] as const) {
    it(`${how}, ${form}: numbers each live room from its last_seq in batch order, stores nothing for an expired or unknown room`, async () => {
      const [live, other, expired, missing] = [await room({ lastSeq: 5 }), await room(), await room({ expired: true, lastSeq: 3 }), randomUUID()];
      const repository = makeRepository();
      const batch = [
        message(live, 'a1'),
        message(expired, 'x1'),
        message(other, 'b1'),
        message(live, 'a2', form === 'with a clientMessageId' ? randomUUID() : null),
        message(missing, 'm1'),
        message(live, 'a3'),
        message(other, 'b2'),
      ];
      const outcomes = await repository.insertBatch(batch, write);
      expect(summary(outcomes)).toEqual(['stored a1 #6', 'room-expired', 'stored b1 #1', 'stored a2 #7', 'room-missing', 'stored a3 #8', 'stored b2 #2']);
      const rows = await database.sql<{ room_id: string; content: string; seq: number; expires_at: Date; room_expires: Date }[]>`
        select m.room_id, m.content, m.seq, m.expires_at, r.expires_at as room_expires
        from messages m join rooms r on r.id = m.room_id
        where m.room_id in (${live}, ${other}, ${expired}) order by m.room_id, m.seq`;
      expect(rows.filter((r) => r.room_id === live).map((r) => `${r.content}#${r.seq}`)).toEqual(['a1#6', 'a2#7', 'a3#8']);
      expect(rows.filter((r) => r.room_id === other).map((r) => `${r.content}#${r.seq}`)).toEqual(['b1#1', 'b2#2']);
      expect(rows.some((r) => r.room_id === expired)).toBe(false);
      for (const row of rows) expect(new Date(row.expires_at).getTime()).toBe(new Date(row.room_expires).getTime());
      const stored = outcomes.find((o) => o.status === 'stored');
      if (stored?.status !== 'stored') throw new Error('unreachable');
      expect(stored.message.expiresAt.getTime()).toBe(new Date(rows.find((r) => r.room_id === live)!.room_expires).getTime());
      const seqs = await database.sql<{ id: string; last_seq: number; last_change_seq: number }[]>`select id, last_seq, last_change_seq from rooms where id in (${live}, ${other}, ${expired})`;
      expect(Object.fromEntries(seqs.map((r) => [r.id, r.last_seq]))).toEqual({ [live]: 8, [other]: 2, [expired]: 3 });
      // Each stored message is also its room's next change (the change feed), in batch order.
      expect(outcomes.map((o) => (o.status === 'stored' ? o.message.changeSeq : null))).toEqual([1, null, 1, 2, null, 3, 2]);
      expect(Object.fromEntries(seqs.map((r) => [r.id, r.last_change_seq]))).toEqual({ [live]: 3, [other]: 2, [expired]: 0 });
    });
  }

  /** The last statement a session ran (its first 1 KiB), to tell the two forms apart. */
  async function lastStatementOf(pid: number): Promise<string> {
    const [last] = await database.sql<{ query: string }[]>`select query from pg_stat_activity where pid = ${pid}`;
    return last!.query;
  }
  // Committing synchronously, so that the batch statement is the writer's last (no barrier after it).
  const oneQuery = { releaseLocksEarly: false };

  for (const [how, { make: makeRepository, write }] of Object.entries(repositories)) {
    it(`${how}: a retry of a stored message answers the original and the rest of its batch is numbered after it`, async () => {
      const repository = makeRepository();
      const id = await room();
      const clientMessageId = randomUUID();
      expect(summary(await repository.insertBatch([message(id, 'first', clientMessageId)], write))).toEqual(['stored first #1']);
      const outcomes = await repository.insertBatch([message(id, 'new', randomUUID()), message(id, 'first, again', clientMessageId), message(id, 'plain')], write);
      expect(summary(outcomes)).toEqual(['stored new #2', 'duplicate first #1', 'stored plain #3']);
      const rows = await database.sql<{ content: string; seq: number }[]>`select content, seq from messages where room_id = ${id} order by seq`;
      expect(rows.map((r) => `${r.content}#${r.seq}`)).toEqual(['first#1', 'new#2', 'plain#3']);
      const [counters] = await database.sql<{ last_seq: number; last_change_seq: number }[]>`select last_seq, last_change_seq from rooms where id = ${id}`;
      expect(counters).toEqual({ last_seq: 3, last_change_seq: 3 });
    });

    it(`${how}: the same clientMessageId twice in one batch stores the first and answers it for the second`, async () => {
      const repository = makeRepository();
      const id = await room();
      const clientMessageId = randomUUID();
      const outcomes = await repository.insertBatch([message(id, 'once', clientMessageId), message(id, 'twice', clientMessageId), message(id, 'other', randomUUID())], write);
      expect(summary(outcomes)).toEqual(['stored once #1', 'duplicate once #1', 'stored other #2']);
    });
  }

  it('writes a batch whose clientMessageIds are all new with the plain statement, and a batch with a retry with the dedupe statement', async () => {
    const repository = createMessagesRepository(database.sql, { batchConnection: writerDatabase });
    const id = await room();
    const [writer] = await writerDatabase.sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const clientMessageId = randomUUID();
    expect(summary(await repository.insertBatch([message(id, 'a', clientMessageId), message(id, 'b', randomUUID())], oneQuery))).toEqual(['stored a #1', 'stored b #2']);
    const plain = await lastStatementOf(writer!.pid);
    expect(plain).toContain('deferred as (');
    expect(plain).not.toContain('existing as (');
    // A retry: the plain statement finds it and writes nothing; the dedupe statement runs last.
    expect(summary(await repository.insertBatch([message(id, 'a again', clientMessageId), message(id, 'c', randomUUID())], oneQuery))).toEqual(['duplicate a #1', 'stored c #3']);
    expect(await lastStatementOf(writer!.pid)).toContain('existing as (');
  });

  it('keeps seq gap-free and never deadlocks when two pods write overlapping rooms in opposite orders', async () => {
    const rooms = [await room(), await room(), await room(), await room()];
    const otherWriter = createDatabase({ url: testDb.url, maxConnections: 1, synchronousCommit: 'off' });
    const pods = [createMessagesRepository(database.sql, { batchConnection: writerDatabase }), createMessagesRepository(database.sql, { batchConnection: otherWriter })];
    const writes: Promise<BatchOutcome[]>[] = [];
    for (let round = 0; round < 15; round++) {
      for (const [index, pod] of pods.entries()) {
        const order = index === 0 ? rooms : [...rooms].reverse();
        writes.push(pod.insertBatch(order.flatMap((id) => [message(id, `p${index}r${round}`), message(id, `p${index}r${round}'`)])));
      }
    }
    const outcomes = (await Promise.all(writes)).flat();
    await otherWriter.close();
    expect(outcomes.every((o) => o.status === 'stored')).toBe(true);
    for (const id of rooms) {
      const seqs = await database.sql<{ seq: number }[]>`select seq from messages where room_id = ${id} order by seq`;
      expect(seqs.map((r) => r.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    }
  });

  it('with early lock release, follows every batch with a durability barrier on the same connection', async () => {
    // The batch commits without waiting for its WAL flush; what makes insertBatch durable is the
    // barrier sent right behind it: a transaction that writes WAL and commits synchronously.
    const repository = createMessagesRepository(database.sql, { batchConnection: writerDatabase });
    const id = await room();
    const [own] = await writerDatabase.sql<{ pid: number; sync: string }[]>`select pg_backend_pid() as pid, current_setting('synchronous_commit') as sync`;
    expect(own!.sync).toBe('off');
    expect(summary(await repository.insertBatch([message(id, 'durable')]))).toEqual(['stored durable #1']);
    // pg_stat_activity shows the last statement an idle session ran: the barrier, not the batch.
    const [last] = await database.sql<{ query: string }[]>`select query from pg_stat_activity where pid = ${own!.pid}`;
    expect(last!.query).toContain('pg_logical_emit_message');
    expect(last!.query).toContain("set_config('synchronous_commit', 'on', true)");
  });

  for (const form of ['without clientMessageId', 'with a clientMessageId'] as const) {
    it(`without early release on the writer connection, ${form}: the batch commits synchronously by itself and no barrier follows`, async () => {
      const repository = createMessagesRepository(database.sql, { batchConnection: writerDatabase });
      const id = await room();
      const [own] = await writerDatabase.sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const clientMessageId = form === 'with a clientMessageId' ? randomUUID() : null;
      expect(summary(await repository.insertBatch([message(id, 'one query', clientMessageId)], { releaseLocksEarly: false }))).toEqual(['stored one query #1']);
      // The last statement the writer's session ran is the batch itself, which turned
      // synchronous_commit on for its own transaction (the session's setting stays off).
      const [last] = await database.sql<{ query: string }[]>`select query from pg_stat_activity where pid = ${own!.pid}`;
      // (pg_stat_activity keeps a statement's first 1 KiB: the setting comes first in it.)
      expect(last!.query).toContain("set_config('synchronous_commit', 'on', true)");
      expect(last!.query).not.toContain('pg_logical_emit_message');
      const [setting] = await writerDatabase.sql<{ sync: string }[]>`select current_setting('synchronous_commit') as sync`;
      expect(setting!.sync).toBe('off');
    });
  }
  describe('membership (PROTOCOL §4: a send requires membership)', () => {
    /** Users (the `kind` of a bot for the server API's sender) and a membership of `member`s. */
    async function user(nickname: string, kind: 'user' | 'bot' = 'user') {
      const id = randomUUID();
      await database.sql`insert into users (id, nickname, kind) values (${id}, ${nickname}, ${kind})`;
      return id;
    }
    const join = (roomId: string, member: string) => database.sql`insert into room_members (room_id, user_id) values (${roomId}, ${member})`;
    /** A user's send: stored only while the sender is a member. */
    const sent = (roomId: string, sender: string, content: string, clientMessageId: string | null = null) => message(roomId, content, clientMessageId, sender, true);
    /** A server API publish by a bot, which is no member. */
    const published = (roomId: string, bot: string, content: string) => message(roomId, content, null, bot, false);

    async function mixedRooms() {
      const [live, other] = [await room({ lastSeq: 5 }), await room()];
      const [alice, bob, mallory, bot] = [await user('앨리스'), await user('밥'), await user('말로리'), await user('봇', 'bot')];
      await join(live, alice);
      await join(live, bob);
      await join(other, alice);
      // Mallory is a member of the other room only; she was one of `live` and left it.
      await join(other, mallory);
      await join(live, mallory);
      await database.sql`delete from room_members where room_id = ${live} and user_id = ${mallory}`;
      return { live, other, alice, bob, mallory, bot };
    }
    const rowsOf = async (roomId: string) =>
      (await database.sql<{ content: string; seq: number; change_seq: number }[]>`select content, seq, change_seq from messages where room_id = ${roomId} order by seq`).map(
        (r) => `${r.content}#${r.seq}/${r.change_seq}`,
      );
    const countersOf = async (roomId: string) =>
      (await database.sql<{ last_seq: number; last_change_seq: number }[]>`select last_seq, last_change_seq from rooms where id = ${roomId}`)[0];

    for (const [how, { make: makeRepository, write }] of Object.entries(repositories)) {
      it(`${how}: stores the members' and the bot's messages gap-free and refuses the non-member's, which takes no number`, async () => {
        const repository = makeRepository();
        const { live, other, alice, bob, mallory, bot } = await mixedRooms();
        const outcomes = await repository.insertBatch(
          [
            sent(live, alice, 'a1'),
            sent(live, mallory, 'm1', randomUUID()),
            published(live, bot, 'bot1'),
            sent(other, mallory, 'm2'),
            sent(live, bob, 'b1', randomUUID()),
            sent(live, mallory, 'm3'),
            sent(live, alice, 'a2'),
          ],
          write,
        );
        expect(summary(outcomes)).toEqual(['stored a1 #6', 'not-member', 'stored bot1 #7', 'stored m2 #1', 'stored b1 #8', 'not-member', 'stored a2 #9']);
        expect(await rowsOf(live)).toEqual(['a1#6/1', 'bot1#7/2', 'b1#8/3', 'a2#9/4']);
        expect(await rowsOf(other)).toEqual(['m2#1/1']);
        expect(await countersOf(live)).toEqual({ last_seq: 9, last_change_seq: 4 });
        // The refused messages are nowhere: not in another room, not under their ids.
        const [mallorys] = await database.sql<{ n: number }[]>`select count(*)::int as n from messages where user_id = ${mallory}`;
        expect(mallorys!.n).toBe(1);
      });

      it(`${how}: the same in a batch holding a retry (the dedupe form): the retry answers its original, the non-member is refused`, async () => {
        const repository = makeRepository();
        const { live, alice, bob, mallory, bot } = await mixedRooms();
        const clientMessageId = randomUUID();
        expect(summary(await repository.insertBatch([sent(live, alice, 'first', clientMessageId)], write))).toEqual(['stored first #6']);
        const repeated = randomUUID();
        const outcomes = await repository.insertBatch(
          [
            sent(live, bob, 'b1'),
            sent(live, mallory, 'm1', repeated),
            sent(live, alice, 'first, again', clientMessageId),
            published(live, bot, 'bot1'),
            sent(live, mallory, 'm1, again', repeated),
            sent(live, alice, 'a2', randomUUID()),
          ],
          write,
        );
        expect(summary(outcomes)).toEqual(['stored b1 #7', 'not-member', 'duplicate first #6', 'stored bot1 #8', 'not-member', 'stored a2 #9']);
        expect(await rowsOf(live)).toEqual(['first#6/1', 'b1#7/2', 'bot1#8/3', 'a2#9/4']);
        expect(await countersOf(live)).toEqual({ last_seq: 9, last_change_seq: 4 });
      });

      it(`${how}: a batch of a non-member alone stores nothing and leaves the room's counters as they were`, async () => {
        const repository = makeRepository();
        const { live, mallory } = await mixedRooms();
        expect(summary(await repository.insertBatch([sent(live, mallory, 'm1'), sent(live, mallory, 'm2', randomUUID())], write))).toEqual(['not-member', 'not-member']);
        expect(await rowsOf(live)).toEqual([]);
        expect(await countersOf(live)).toEqual({ last_seq: 5, last_change_seq: 0 });
      });
    }

    it('an expired room is answered room-expired before membership, an unknown one room-missing', async () => {
      const repository = createMessagesRepository(database.sql);
      const { live, mallory } = await mixedRooms();
      const expired = await room({ expired: true });
      expect(summary(await repository.insertBatch([sent(expired, mallory, 'x'), sent(randomUUID(), mallory, 'y'), sent(live, mallory, 'z')]))).toEqual([
        'room-expired',
        'room-missing',
        'not-member',
      ]);
    });

    it('checks members in the plain statement, and leaves a batch with a non-member to the dedupe statement', async () => {
      const repository = createMessagesRepository(database.sql, { batchConnection: writerDatabase });
      const { live, alice, bob, mallory } = await mixedRooms();
      const [writer] = await writerDatabase.sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
      expect(summary(await repository.insertBatch([sent(live, alice, 'a'), sent(live, bob, 'b', randomUUID())], oneQuery))).toEqual(['stored a #6', 'stored b #7']);
      const plain = await lastStatementOf(writer!.pid);
      expect(plain).toContain('deferred as (');
      expect(plain).not.toContain('existing as (');
      expect(summary(await repository.insertBatch([sent(live, alice, 'c'), sent(live, mallory, 'm')], oneQuery))).toEqual(['stored c #8', 'not-member']);
      expect(await lastStatementOf(writer!.pid)).toContain('existing as (');
    });
  });
});
