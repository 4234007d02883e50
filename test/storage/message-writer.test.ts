import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, createMessagesRepository, type Database, type MessagesRepository, type NewMessage } from '@chat/db';
import { createTestDatabase, type TestDatabase } from '@chat/testing';
import { BatchStalledError, MessageWriter } from '../../apps/gateway/src/infrastructure/message-writer.ts';

/** The group-commit writer against a real Postgres: admission gating, order, and a stalled batch. */
describe('MessageWriter', () => {
  let testDb: TestDatabase;
  let database: Database;
  let repository: MessagesRepository;
  let roomId: string;
  let userId: string;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = createDatabase({ url: testDb.url, maxConnections: 4 });
    repository = createMessagesRepository(database.sql);
    userId = randomUUID();
    roomId = randomUUID();
    await database.sql`insert into users (id, nickname) values (${userId}, '작성자')`;
    await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      values (${roomId}, 'writer', ${userId}, 1, now(), now() + interval '1 day')`;
  });

  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  const message = (content: string): NewMessage => ({
    id: randomUUID(),
    roomId,
    userId,
    type: 'text',
    content,
    imageUrl: null,
    clientMessageId: null,
    createdAt: new Date(),
    requireMember: false,
  });
  const settleAfter = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));
  /** A writer on the real repository that records the size of every batch it commits. */
  const recordingBatches = (options: ConstructorParameters<typeof MessageWriter>[2] = {}) => {
    const sizes: number[] = [];
    const writer = new MessageWriter(repository, { committed: (size) => sizes.push(size) }, options);
    return { writer, sizes };
  };

  const storedContents = async (contents: string[]) =>
    (await database.sql<{ content: string; seq: number }[]>`
      select content, seq from messages where room_id = ${roomId} and content = any(${contents}) order by seq`).map((r) => r.content);

  it('writes admitted messages in arrival order, even when a later admission settles first, and drops the rest', async () => {
    const writer = new MessageWriter(repository);
    const tag = randomUUID().slice(0, 8);
    const [slow, refused, fast, failed] = await Promise.all([
      writer.write(message(`${tag}-slow`), settleAfter(80, true)),
      writer.write(message(`${tag}-refused`), Promise.resolve(false)),
      writer.write(message(`${tag}-fast`), Promise.resolve(true)),
      writer.write(message(`${tag}-failed`), Promise.reject(new Error('rate limiter down'))),
    ]);
    expect(slow.status).toBe('stored');
    expect(refused.status).toBe('not-admitted');
    expect(fast.status).toBe('stored');
    expect(failed.status).toBe('not-admitted');
    if (slow.status !== 'stored' || fast.status !== 'stored') throw new Error('unreachable');
    expect(fast.message.seq).toBe(slow.message.seq + 1);
    expect(await storedContents([`${tag}-slow`, `${tag}-refused`, `${tag}-fast`, `${tag}-failed`])).toEqual([`${tag}-slow`, `${tag}-fast`]);
  });

  it('puts the messages of one event-loop iteration in one batch, even from separate callbacks', async () => {
    const { writer, sizes } = recordingBatches();
    const tag = randomUUID().slice(0, 8);
    // Three immediates queued together run in one check phase, each its own callback (as the
    // reads of three sockets in one poll are): the batch starts only after the last of them.
    // (Not three setTimeout(0)s: each reads the clock when it is set, so under load the third
    // could fall a millisecond later than the first and run in a later loop iteration.)
    const written = await new Promise<Promise<unknown>[]>((resolve) => {
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 3; i++) {
        setImmediate(() => {
          writes.push(writer.write(message(`${tag}-${i}`)));
          if (writes.length === 3) resolve(writes);
        });
      }
    });
    await Promise.all(written);
    expect(sizes).toEqual([3]);
  });

  it('gives up on a batch that never settles and goes on writing the next ones', async () => {
    let calls = 0;
    const hangsOnce: MessagesRepository = {
      ...repository,
      insertBatch: (batch) => (++calls === 1 ? new Promise(() => undefined) : repository.insertBatch(batch)),
    };
    const failures: unknown[] = [];
    let stalls = 0;
    const writer = new MessageWriter(hangsOnce, { failed: (error) => failures.push(error), stalled: () => stalls++ }, { stalledAfterMs: 150 });
    const tag = randomUUID().slice(0, 8);
    const stuck = writer.write(message(`${tag}-stuck`));
    // Once the first batch is in flight, the next message waits for another one.
    for (let waited = 0; calls === 0 && waited < 2000; waited += 5) await new Promise((resolve) => setTimeout(resolve, 5));
    const next = writer.write(message(`${tag}-next`));
    await expect(stuck).rejects.toBeInstanceOf(BatchStalledError);
    expect((await next).status).toBe('stored');
    expect(failures).toHaveLength(1);
    // …and says so, so that the gateway replaces the connection the stuck query holds.
    expect(stalls).toBe(1);
    expect(await storedContents([`${tag}-stuck`, `${tag}-next`])).toEqual([`${tag}-next`]);
    await writer.idle();
  });

  it('releases row locks early (async commit + barrier) only for batches of a room this pod writes often', async () => {
    const writerDatabase = createDatabase({ url: testDb.url, maxConnections: 1, synchronousCommit: 'off' });
    try {
      const onWriter = createMessagesRepository(database.sql, { batchConnection: writerDatabase });
      const [own] = await writerDatabase.sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const lastQuery = async () => (await database.sql<{ query: string }[]>`select query from pg_stat_activity where pid = ${own!.pid}`)[0]!.query;
      const writer = new MessageWriter(onWriter, {}, { earlyReleaseMessagesPerSecond: 50 });
      const tag = randomUUID().slice(0, 8);
      // A room written once: its batch commits synchronously by itself, one query.
      expect((await writer.write(message(`${tag}-cold`))).status).toBe('stored');
      expect(await lastQuery()).not.toContain('pg_logical_emit_message');
      // The same room written 60 times within the second: a hot room, whose batches let go of
      // its row lock at commit and become durable through the barrier behind them.
      await Promise.all(Array.from({ length: 59 }, (_, i) => writer.write(message(`${tag}-${i}`))));
      expect((await writer.write(message(`${tag}-hot`))).status).toBe('stored');
      expect(await lastQuery()).toContain('pg_logical_emit_message');
      expect(await storedContents([`${tag}-cold`, `${tag}-hot`])).toEqual([`${tag}-cold`, `${tag}-hot`]);
      // A big batch releases early whatever its rooms: it locks many, which other pods wait for.
      const bySize = new MessageWriter(onWriter, {}, { earlyReleaseMessagesPerSecond: 1000, earlyReleaseBatchSize: 5 });
      expect((await bySize.write(message(`${tag}-small`))).status).toBe('stored');
      expect(await lastQuery()).not.toContain('pg_logical_emit_message');
      await Promise.all(Array.from({ length: 5 }, (_, i) => bySize.write(message(`${tag}-big-${i}`))));
      expect(await lastQuery()).toContain('pg_logical_emit_message');
    } finally {
      await writerDatabase.close();
    }
  });

  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('at a busy pod, a small batch lingers for company: messages 30 ms apart share one batch', async () => {
    const { writer, sizes } = recordingBatches({ lingerMs: 400 });
    const tag = randomUUID().slice(0, 8);
    // Six messages within the second: at that rate the 400 ms linger expects company.
    await Promise.all(Array.from({ length: 6 }, (_, i) => writer.write(message(`${tag}-warm-${i}`))));
    const spaced: Promise<unknown>[] = [];
    for (let i = 0; i < 3; i++) {
      spaced.push(writer.write(message(`${tag}-${i}`)));
      await pause(30);
    }
    await Promise.all(spaced);
    // Without the linger the first of them would have gone alone (a batch takes a few ms).
    expect(sizes).toEqual([6, 3]);
    expect(await storedContents([`${tag}-0`, `${tag}-1`, `${tag}-2`])).toEqual([`${tag}-0`, `${tag}-1`, `${tag}-2`]);
  });

  it('ends a linger as soon as eight messages are queued', async () => {
    // A linger far longer than the test's timeout: only the eighth message can end it.
    const { writer, sizes } = recordingBatches({ lingerMs: 20_000 });
    const tag = randomUUID().slice(0, 8);
    const first = writer.write(message(`${tag}-first`));
    await pause(20);
    const rest = Array.from({ length: 7 }, (_, i) => writer.write(message(`${tag}-${i}`)));
    expect((await first).status).toBe('stored');
    await Promise.all(rest);
    expect(sizes).toEqual([8]);
  });

  it('at a quiet pod, writes a message at once instead of lingering', async () => {
    // One message a second would need a linger of a whole second to expect company.
    const { writer, sizes } = recordingBatches({ lingerMs: 900 });
    const tag = randomUUID().slice(0, 8);
    const lone = writer.write(message(`${tag}-lone`));
    await pause(300);
    const later = writer.write(message(`${tag}-later`));
    await Promise.all([lone, later]);
    expect(sizes).toEqual([1, 1]);
  });
});

/**
 * The batch statement reads `messages` only through its indexes, whatever the table's
 * statistics say: its dedupe read used to be planned as a scan of the whole table while the
 * statistics were small or stale (a new database, or one that grew fast). Counted by Postgres
 * for one transaction, on a database that has never been analyzed.
 */
describe('the batch statement', () => {
  let testDb: TestDatabase;
  let database: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = createDatabase({ url: testDb.url, maxConnections: 1 });
  });

  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  it('never scans messages sequentially, retries and repeats included', async () => {
    const userId = randomUUID();
    const roomIds = [randomUUID(), randomUUID()];
    await database.sql`insert into users (id, nickname) values (${userId}, '작성자')`;
    for (const id of roomIds) {
      await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
        values (${id}, 'plan', ${userId}, 1, now(), now() + interval '1 day')`;
    }
    const message = (index: number, clientMessageId: string | null): NewMessage => ({
      id: randomUUID(),
      roomId: roomIds[index % 2]!,
      userId,
      type: 'text',
      content: `m${index}`,
      imageUrl: null,
      clientMessageId,
      createdAt: new Date(),
      requireMember: false,
    });
    const repository = createMessagesRepository(database.sql);
    for (let i = 0; i < 40; i++) {
      await repository.insertBatch(Array.from({ length: 25 }, (_, j) => message(i * 25 + j, randomUUID())));
    }
    const retried = randomUUID();
    await repository.insertBatch([message(0, retried)]);

    const [counts, outcomes] = await database.sql.begin(async (tx) => {
      const batch = [message(1, retried), message(2, randomUUID()), message(3, null), message(4, retried)];
      const written = await createMessagesRepository(tx as unknown as typeof database.sql).insertBatch(batch);
      // Summed over the day partitions of `messages` (docs/partitions.md). messages_default is
      // left out: it is empty unless a day lacks its partition, and an empty table is planned
      // as a free sequential scan.
      const [row] = await tx<{ seq_scan: number; idx_scan: number }[]>`
        select coalesce(sum(seq_scan), 0)::int as seq_scan, coalesce(sum(idx_scan), 0)::int as idx_scan
        from pg_stat_xact_user_tables where relname ~ '^messages_p[0-9]{8}$'`;
      return [row, written] as const;
    });
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['duplicate', 'stored', 'stored', 'duplicate']);
    expect(counts).toMatchObject({ seq_scan: 0 });
    expect(counts!.idx_scan).toBeGreaterThan(0);
  });
});
