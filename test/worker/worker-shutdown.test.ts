import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOB_CATALOG, bullPrefix } from '@chat/jobs';
import { createTestDatabase, sleep, type ClusterServices, type TestDatabase } from '@chat/testing';
import { closeAllWorkers, startTestWorker, workerServices } from '../support/index.ts';
import { dayFromToday, messagePlacement, seedUser } from '../support/partitions.ts';

/**
 * SIGTERM while a long job runs (k8s: a rollout, a node drain). The worker's stop
 * (`WorkerApp.close`, what SIGTERM runs) lets the running jobs finish, and must be done within
 * SHUTDOWN_TIMEOUT_MS (10 s, under the pod's 30 s grace) or the process exits 1 with the job left
 * to BullMQ's stalled check. A partition move of a large messages_default has a 45 s budget and
 * a sweep purges a big room until it is empty: both stop at their next batch once the worker is
 * stopping, leaving the rest to the next run (each step is resumable), instead of holding the
 * stop for their whole length. Real Postgres and Redis; the worker in this process on a
 * database and key prefix of this file's own.
 */

let database: TestDatabase;
let sql: Sql;
let services: ClusterServices;

beforeAll(async () => {
  database = await createTestDatabase();
  sql = postgres(database.url, { max: 2, onnotice: () => {} });
  services = workerServices(database.url, 'shutdown');
});
afterAll(async () => {
  await closeAllWorkers();
  await sql?.end();
  await database?.drop();
});

/** Adds a run to a job's queue, as its scheduler would. */
async function runNow(queueName: string, jobName: string): Promise<void> {
  const redis = new Redis(services.redisUrl, { maxRetriesPerRequest: 1 });
  const queue = new Queue(queueName, { connection: redis, prefix: bullPrefix(services.redisPrefix) });
  try {
    await queue.add(jobName, {}, { removeOnComplete: 100, removeOnFail: 100 });
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

/** Polls (bounded: 1000 × 10 ms) until `probe` holds. */
async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    if (await probe()) return;
    await sleep(10);
  }
  throw new Error(`${what}: never`);
}

const moveUnderWay = async () => (await sql<{ n: number }[]>`select count(*)::int as n from messages_default_move`)[0]!.n === 1;
const copying = async () => (await sql`select 1 from messages_default_move where copied_through_id is not null`).length > 0;

describe('stopping the worker while a long job runs', () => {
  it('a partition move stops at its next batch; the next worker finishes it', { timeout: 120_000 }, async () => {
    // Quiet schedules: only the runs this test adds.
    const env = { SWEEP_INTERVAL_MS: '60000', PRESENCE_GC_INTERVAL_MS: '60000', POD_NAME: 'stopping-mover' };
    const worker = await startTestWorker(services, env);
    // Rows of a day farther than the job ever looks ahead: messages_default holds them, and the
    // move copies them 5,000 a batch (40 batches).
    const user = await seedUser(sql, '이동');
    const day = await dayFromToday(sql, 45);
    const roomId = randomUUID();
    const rows = 200_000;
    await sql.begin(async (tx) => {
      await tx`insert into rooms (id, name, created_by, created_at, expires_at, last_seq, member_count) values (${roomId}, 'm', ${user}, now(), ${`${day}T12:00:00.000Z`}, ${rows}, 0)`;
      await tx`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
               select gen_random_uuid(), ${roomId}, ${user}, 'text', 'm ' || g, g, now(), ${`${day}T12:00:00.000Z`}::timestamptz from generate_series(1, ${rows}::int) g`;
    });
    expect(await messagePlacement(sql, roomId)).toEqual({ messages_default: rows });

    await runNow(JOB_CATALOG.partitionMaintenance.queue, JOB_CATALOG.partitionMaintenance.jobName);
    await until('the move copying', copying);
    await worker.close();
    // Stopped mid-move: the move is still under way, its rows still readable where they were.
    expect(await moveUnderWay()).toBe(true);
    expect(await messagePlacement(sql, roomId)).toEqual({ messages_default: rows });

    // The next worker's run at its start goes on where the move stands.
    const next = await startTestWorker(services, { ...env, POD_NAME: 'next-mover' });
    expect(await moveUnderWay()).toBe(false);
    expect(await messagePlacement(sql, roomId)).toEqual({ [`messages_p${day.replaceAll('-', '')}`]: rows });
    await next.close();
  });

  it('a sweep purging a big room stops at its next batch; the next worker finishes the room', { timeout: 120_000 }, async () => {
    const members = 30_000;
    const user = await seedUser(sql, '방장');
    const roomId = randomUUID();
    // Expired already, with its members (batches of 50: 600 of them).
    await sql.begin(async (tx) => {
      await tx`insert into rooms (id, name, created_by, created_at, expires_at, member_count)
               values (${roomId}, 'big', ${user}, now() - interval '1 hour', now() - interval '1 second', ${members})`;
      await tx`with added as (insert into users (id, nickname) select gen_random_uuid(), '회원' || g from generate_series(1, ${members}::int) g returning id)
               insert into room_members (room_id, user_id) select ${roomId}, id from added`;
    });
    const left = async () => (await sql<{ n: number }[]>`select count(*)::int as n from room_members where room_id = ${roomId}`)[0]!.n;
    const expired = async () => (await sql<{ n: number }[]>`select count(*)::int as n from rooms where id = ${roomId} and expired_at is not null`)[0]!.n === 1;

    const env = { SWEEP_INTERVAL_MS: '200', SWEEP_BATCH_SIZE: '50', ROOM_EXPIRING_NOTICE_SECONDS: '0' };
    const worker = await startTestWorker(services, { ...env, POD_NAME: 'stopping-sweeper' });
    await until('the purge under way', async () => (await left()) < members);
    await worker.close();
    // Stopped mid-room: memberships left, the room not marked, and nobody purges it now.
    const atStop = await left();
    expect(atStop).toBeGreaterThan(0);
    expect(await expired()).toBe(false);

    const next = await startTestWorker(services, { ...env, SWEEP_BATCH_SIZE: '1000', POD_NAME: 'next-sweeper' });
    await until('the next worker finishing the room', async () => (await left()) === 0 && (await expired()));
    await next.close();
  });
});
