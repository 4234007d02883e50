import { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect } from 'vitest';
import { createRoom, emitAck, freePort, makeUser, nextEvent, record, sleep, startTcpRelay } from '@chat/testing';
import { clusterTest, startTestWorker, type TestCluster } from '../support/index.ts';

/**
 * Postgres gone without a reset (a network partition, a node that vanished: packets dropped, no
 * RST): postgres.js has no query timeout of its own and the server's statement_timeout is never
 * heard, so a job's query waited until the TCP stack gave up, minutes, while BullMQ's lock
 * renewal kept the job from ever counting as stalled: no room expired anywhere meanwhile. The
 * worker reaches Postgres through a relay that is frozen (every socket kept open, every byte
 * dropped) and then lets new connections through again, the frozen ones staying dead, as a
 * replaced node's would. Its own database (the sweep touches every room) and worker.
 */

const it = clusterTest({ pods: 1, ownDatabase: true });
let cluster: TestCluster;

it.beforeAll(({ cluster: started }) => {
  cluster = started;
});

/** The bound the worker is given: the fix must fail the job within it, and some. Above the worker's 5 s statement timeout, as its config requires. */
const STALL_MS = 6000;
/** Past the bound by far, and far short of the TCP stack's minutes. */
const FAIL_WITHIN_MS = STALL_MS + 12_000;

async function until(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/** The failure reasons of the failed sweeps in Redis, oldest first (BullMQ keeps the last 500). */
async function failedSweepReasons(redis: Redis): Promise<string[]> {
  const base = `${cluster.redisPrefix}:bull:room-sweep`;
  const ids = await redis.zrange(`${base}:failed`, 0, -1);
  const reasons = await Promise.all(ids.map((id) => redis.hget(`${base}:${id}`, 'failedReason')));
  return reasons.map((reason) => reason ?? '');
}

async function metric(port: number, name: string): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = body.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('a worker whose Postgres vanishes without a reset', () => {
  it('fails the stalled sweep within DATABASE_STALL_TIMEOUT_MS, and sweeps again once Postgres is reachable, without a restart', { timeout: 90_000 }, async ({ connect, sql }) => {
    const url = cluster.pods[0]!.url;
    const relay = await startTcpRelay(cluster.databaseUrl);
    const metricsPort = await freePort();
    const logs: { level: number; msg: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as { level: number; msg: string }) });
    const redis = new Redis(cluster.redisUrl);
    const worker = await startTestWorker(
      cluster,
      { DATABASE_URL: relay.url, DATABASE_STALL_TIMEOUT_MS: String(STALL_MS), METRICS_PORT: String(metricsPort), METRICS_HOST: '127.0.0.1', POD_NAME: 'blackholed' },
      { logger: () => logger },
    );
    try {
      const alice = await makeUser('김철수');
      const socket = await connect(url, alice.token);
      const expired = record(socket, 'room-expired');

      // Through the relay the sweep works.
      const before = await createRoom(url, alice, { ttlSeconds: 1 });
      expect(await emitAck(socket, 'join-room', { roomId: before.roomId })).toMatchObject({ ok: true });
      expect(await nextEvent(socket, 'room-expired', 10_000)).toMatchObject({ roomId: before.roomId });
      const failedBefore = (await failedSweepReasons(redis)).length;

      // Postgres vanishes: a sweep runs every 200 ms, so one is in flight or about to start, and
      // its statement is never answered. Its job fails within the bound (it hung for good before).
      relay.freeze();
      await until('a sweep failed on the stalled Postgres', async () => (await failedSweepReasons(redis)).length > failedBefore, FAIL_WITHIN_MS);
      expect((await failedSweepReasons(redis)).slice(failedBefore).join('\n')).toContain(`Postgres did not answer within ${STALL_MS} ms`);

      // A room expires while Postgres is away (the gateway reaches it directly).
      const during = await createRoom(url, alice, { ttlSeconds: 1 });
      expect(await emitAck(socket, 'join-room', { roomId: during.roomId })).toMatchObject({ ok: true });
      await until('the room is due', async () => Date.now() > Date.parse(during.expiresAt) + 500, 10_000);
      expect(expired.map((event) => event.roomId)).not.toContain(during.roomId);

      // Reachable again, through new connections only: the frozen ones stay dead. The next
      // sweeps run on fresh connections and expire the room, with no restart of the worker.
      relay.thaw();
      await until('the room expired meanwhile is announced', async () => expired.some((event) => event.roomId === during.roomId), 20_000);
      // Marked expired once its members are purged, right after the announcement.
      const markedExpired = async () => {
        const [row] = await sql<{ expired: boolean }[]>`select expired_at is not null as expired from rooms where id = ${during.roomId}`;
        return row?.expired === true;
      };
      await until('the room is marked expired', markedExpired, 10_000);

      expect(await metric(metricsPort, 'chat_worker_postgres_replaced_total')).toBeGreaterThanOrEqual(1);
      // One episode, one error line, however many replacements it took; its end is told too
      // (a bound after the first success: a call stuck since the freeze may still stall).
      await until('the end of the episode is logged', async () => logs.some((line) => line.msg === 'Postgres answering again after a stall'), STALL_MS + 5000);
      expect(logs.filter((line) => line.msg.startsWith('Postgres call stalled:'))).toHaveLength(1);
      expect(JSON.stringify(logs)).not.toContain(relay.url);
    } finally {
      redis.disconnect();
      // The relay first: without the fix the stuck job would hold the worker's close forever.
      await relay.close();
      await worker.close();
    }
  });
});
