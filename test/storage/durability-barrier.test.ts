import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, createMessagesRepository, type Database, type NewMessage } from '@chat/db';
import { createTestDatabase, type TestDatabase } from '@chat/testing';

/**
 * A TCP relay in front of Postgres on a thread of its own, so that it relays while the test's
 * thread is busy, as a pod's event loop is under load. It counts round trips: a client→server
 * chunk that follows a server→client chunk (or opens the conversation) starts one. It holds
 * what the client sends for HOLD_MS before passing it on, so that bytes the client wrote
 * together are read together (and counted once) even when this thread is slow to read them on
 * a busy machine: Postgres cannot answer the first before the relay has read the second.
 * (The bench's counting relay, test/bench/lib/pg-proxy.ts, runs on its caller's thread, which
 * this test keeps busy on purpose.)
 */
const RELAY = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const roundTrips = new Int32Array(workerData.counter);
const firstSentAt = new Float64Array(workerData.clock);
const server = net.createServer((client) => {
  const upstream = net.createConnection({ host: workerData.host, port: workerData.port });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  let clientTurn = false;
  let held = [];
  client.on('data', (chunk) => {
    if (!clientTurn) {
      clientTurn = true;
      Atomics.add(roundTrips, 0, 1);
    }
    if (firstSentAt[0] === 0) firstSentAt[0] = performance.timeOrigin + performance.now();
    held.push(chunk);
    if (held.length === 1) {
      setTimeout(() => {
        for (const part of held) upstream.write(part);
        held = [];
      }, workerData.holdMs);
    }
  });
  upstream.on('data', (chunk) => {
    clientTurn = false;
    client.write(chunk);
  });
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  for (const socket of [client, upstream]) {
    socket.on('close', end);
    socket.on('error', end);
  }
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
`;

/**
 * Longer than a loaded machine keeps the relay's thread waiting; shorter than Linux's delayed
 * ACK (40 ms at the least), which would otherwise release a barrier held back by Nagle before
 * Postgres's answer does, and shorter than `busyFor` below.
 */
const HOLD_MS = 15;

function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // the event loop of a pod acknowledging and broadcasting the batch before
  }
}

/**
 * A batch that releases its rooms' locks early is two queries on the writer's connection: the
 * statement (committed asynchronously) and the durability barrier behind it. Both must reach
 * Postgres in one round trip even when the statement is large and the event loop is busy:
 * sent apart, the barrier waits for the end of the loop's iteration, Postgres answers the
 * statement meanwhile, and every such batch costs a second round trip (two more wake-ups, and
 * the batch's acks wait for it). Two things had to change for one round trip: the barrier is
 * written at once (its padding, messages.repository.ts), and the connection has no Nagle (the
 * postgres.js patch): with Nagle the kernel held the barrier until Postgres's answer to the
 * statement carried the ACK of the statement's bytes. Without either this test counts 2.
 */
describe('the durability barrier', () => {
  let testDb: TestDatabase;
  let database: Database;
  let writerDatabase: Database;
  let relay: Worker;
  const counter = new SharedArrayBuffer(4);
  const roundTrips = () => Atomics.load(new Int32Array(counter), 0);
  /** When the relay read the first bytes after the test set it to 0 (ms since the epoch). */
  const clock = new SharedArrayBuffer(8);
  const firstSentAt = new Float64Array(clock);
  const now = () => performance.timeOrigin + performance.now();
  let userId: string;
  let roomId: string;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = createDatabase({ url: testDb.url, maxConnections: 2 });
    const target = new URL(testDb.url);
    relay = new Worker(RELAY, { eval: true, workerData: { counter, clock, holdMs: HOLD_MS, host: target.hostname, port: Number(target.port || 5432) } });
    const relayPort = await new Promise<number>((resolve, reject) => {
      relay.once('message', resolve);
      relay.once('error', reject);
    });
    const throughRelay = new URL(testDb.url);
    throughRelay.hostname = '127.0.0.1';
    throughRelay.port = String(relayPort);
    writerDatabase = createDatabase({ url: throughRelay.toString(), maxConnections: 1, synchronousCommit: 'off' });
    userId = randomUUID();
    roomId = randomUUID();
    await database.sql`insert into users (id, nickname) values (${userId}, '작성자')`;
    await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      values (${roomId}, 'barrier', ${userId}, 1, now(), now() + interval '1 day')`;
  });
  afterAll(async () => {
    await writerDatabase?.close();
    await database?.close();
    await relay?.terminate();
    await testDb?.drop();
  });

  /** Twelve messages of 200 characters: a statement of several KiB, sent by postgres.js at once. */
  const bigBatch = (size = 12): NewMessage[] =>
    Array.from({ length: size }, () => ({
      id: randomUUID(),
      roomId,
      userId,
      type: 'text' as const,
      content: 'x'.repeat(200),
      imageUrl: null,
      clientMessageId: null,
      createdAt: new Date(),
      requireMember: false,
    }));

  it('goes out with a large batch statement in one round trip while the event loop is busy', async () => {
    const repository = createMessagesRepository(database.sql, { batchConnection: writerDatabase });
    // The first executions prepare both statements (a describe round trip each).
    for (let i = 0; i < 2; i++) await repository.insertBatch(bigBatch(), { releaseLocksEarly: true });

    const write = async (releaseLocksEarly: boolean) => {
      const before = roundTrips();
      // Registered before the batch: runs first when the loop reaches its check phase, as a
      // loaded pod's other work does, before anything the batch left for that phase.
      setImmediate(() => busyFor(150));
      const outcomes = await repository.insertBatch(bigBatch(), { releaseLocksEarly });
      expect(outcomes.every((outcome) => outcome.status === 'stored')).toBe(true);
      return roundTrips() - before;
    };
    // The fixture: a batch committing synchronously by itself is one query, one round trip.
    expect(await write(false)).toBe(1);
    expect(await write(true)).toBe(1);
    const [counters] = await database.sql<{ last_seq: number }[]>`select last_seq from rooms where id = ${roomId}`;
    expect(counters!.last_seq).toBe(48);
  });

  it('a batch of one leaves in the turn it is written, not after the rest of the loop iteration', async () => {
    const repository = createMessagesRepository(database.sql, { batchConnection: writerDatabase });
    await repository.insertBatch(bigBatch(1), { releaseLocksEarly: false });
    for (const releaseLocksEarly of [false, true]) {
      let busyUntil = 0;
      setImmediate(() => {
        busyFor(150);
        busyUntil = now();
      });
      firstSentAt[0] = 0;
      const [outcome] = await repository.insertBatch(bigBatch(1), { releaseLocksEarly });
      expect(outcome!.status).toBe('stored');
      expect(firstSentAt[0]).toBeGreaterThan(0);
      // Deferred, it would have been read by the relay only once the busy turn was over.
      expect(firstSentAt[0]).toBeLessThan(busyUntil - 100);
    }
  });
});
