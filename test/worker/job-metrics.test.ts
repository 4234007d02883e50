import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, freePort, sleep, type ClusterServices, type TestDatabase } from '@chat/testing';
import { closeAllWorkers, startTestWorker, workerServices } from '../support/index.ts';

/**
 * ChatRoomSweepStalled (k8s/base/prometheusrule.yaml) fires when no sweep has completed in 5
 * minutes: `rate(chat_worker_job_duration_seconds_count{queue="room-sweep"}[5m]) == 0`. A sweep
 * that fails on every run (Postgres refusing its queries, a bad row) expires no room either, so
 * a failed run must not count as one that ran: it is counted in chat_worker_job_failures_total
 * (ChatWorkerJobsFailing) only. Real Postgres and Redis, the worker in this process on a
 * database of this file's own, its /metrics scraped over HTTP.
 */

let database: TestDatabase;
let sql: Sql;
let services: ClusterServices;

beforeAll(async () => {
  database = await createTestDatabase();
  sql = postgres(database.url, { max: 1, onnotice: () => {} });
  services = workerServices(database.url, 'job-metrics');
});
afterAll(async () => {
  await closeAllWorkers();
  await sql?.end();
  await database?.drop();
});

/** A sample's value from the worker's /metrics (0 when absent). */
async function sample(port: number, name: string, queue: string): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = body.split('\n').find((candidate) => candidate.startsWith(`${name}{queue="${queue}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** Polls (bounded: 500 × 20 ms) until `probe` holds. */
async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    if (await probe()) return;
    await sleep(20);
  }
  throw new Error(`${what}: never`);
}

it('a sweep that fails is not counted as a sweep that ran', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const worker = await startTestWorker(services, { METRICS_PORT: String(port), METRICS_HOST: '127.0.0.1', SWEEP_INTERVAL_MS: '100', POD_NAME: 'failing-sweeper' });
  const runs = () => sample(port, 'chat_worker_job_duration_seconds_count', 'room-sweep');
  const failures = () => sample(port, 'chat_worker_job_failures_total', 'room-sweep');
  await until('a sweep completed', async () => (await runs()) > 0);

  // Every sweep fails from now on: its table is away.
  await sql`alter table rooms rename to rooms_away`;
  try {
    await until('a sweep failed', async () => (await failures()) >= 1);
    const runsAfterFirstFailure = await runs();
    await until('three more sweeps failed', async () => (await failures()) >= 4);
    expect(await runs()).toBe(runsAfterFirstFailure);
  } finally {
    await sql`alter table rooms_away rename to rooms`;
  }
  // And once the sweep works again, it counts again.
  const failed = await failures();
  const before = await runs();
  await until('a sweep completed again', async () => (await runs()) > before);
  expect(await failures()).toBeLessThanOrEqual(failed + 1);
  await worker.close();
});
