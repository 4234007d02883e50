import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { JOB_CATALOG, bullPrefix } from '@chat/jobs';
import { createRoom, emitAck, makeUser, nextEvent, sleep, type TestSocket } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * The worker's job health check (apps/worker/src/jobs/job-health.ts): a job scheduler that
 * vanishes from Redis while every connection stays up — as when a Redis Cluster master restarts
 * empty, or a managed Redis fails over behind one address — is put back within seconds, and the
 * sweep runs again: a room created afterwards expires on time. Without the check no sweep would
 * ever run again (BullMQ re-creates nothing, and no connection event fires). And a worker whose
 * blocking read failed — what every client blocked on a Redis gets when it fails over — is woken
 * once a run is overdue, instead of sleeping BullMQ's 10 s ceiling first. And a schedule whose
 * next run was lost — BullMQ schedules it in a call of its own after taking a run, which a
 * failover can fail — is renewed once the run is long overdue, instead of ending there.
 */
const it = clusterTest({ pods: 1, ownDatabase: true });

/** The sweep's BullMQ queue as the worker's Redis holds it, opened beside the worker, for `use`. */
async function withSweepQueue(
  cluster: { redisUrl: string; redisPrefix: string },
  use: (sweep: { redis: Redis; queue: Queue; schedulerId: string }) => Promise<void>,
): Promise<void> {
  const redis = new Redis(cluster.redisUrl);
  const queue = new Queue(JOB_CATALOG.roomSweep.queue, { connection: redis, prefix: bullPrefix(cluster.redisPrefix) });
  try {
    await use({ redis, queue, schedulerId: `${JOB_CATALOG.roomSweep.queue}-every` });
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

/** A room living 2 s expires, and its member hears `room-expired` within `timeoutMs`: the sweep runs. */
async function shortRoomExpiresWithin(url: string, connect: (url: string, token: string) => Promise<TestSocket>, timeoutMs: number): Promise<void> {
  const alice = await makeUser('김철수');
  const room = await createRoom(url, alice, { ttlSeconds: 2 });
  const socket = await connect(url, alice.token);
  const expired = nextEvent(socket, 'room-expired', timeoutMs);
  expect(await emitAck(socket, 'join-room', { roomId: room.roomId })).toMatchObject({ ok: true });
  expect(await expired).toMatchObject({ roomId: room.roomId });
}

it('puts back a job scheduler Redis lost, and the sweep runs again', { timeout: 45_000 }, async ({ cluster, url, connect, startWorker }) => {
  await startWorker({ POD_NAME: 'job-health' });
  await withSweepQueue(cluster, async ({ queue, schedulerId }) => {
    expect(await queue.getJobScheduler(schedulerId)).toBeTruthy();
    // As a Redis that lost its data would: the scheduler and its pending run are gone.
    await queue.removeJobScheduler(schedulerId);
    await queue.drain(true);
    expect(await queue.getJobScheduler(schedulerId)).toBeFalsy();

    await expect.poll(() => queue.getJobScheduler(schedulerId), { timeout: 15_000, interval: 250 }).toBeTruthy();

    await shortRoomExpiresWithin(url, connect, 15_000);
  });
});

it('wakes a worker whose blocking read was failed by Redis, long before BullMQ looks again by itself', { timeout: 45_000 }, async ({ cluster, startWorker }) => {
  await startWorker({ POD_NAME: 'job-wake' });
  await withSweepQueue(cluster, async ({ redis, queue, schedulerId }) => {
    // The sweep's worker between runs is blocked reading the queue's marker; Redis fails that
    // read as it does on a failover (`UNBLOCKED ...`). Between two blocks the read may be off:
    // tried again, boundedly.
    let unblocked = 0;
    for (let attempt = 0; attempt < 200 && unblocked === 0; attempt++) {
      const blocked = (await queue.getWorkers()).find((client) => client.cmd === 'bzpopmin');
      if (blocked) unblocked = Number(await redis.client('UNBLOCK', blocked.id!, 'ERROR'));
      if (unblocked === 0) await sleep(20);
    }
    expect(unblocked).toBe(1);
    const due = (await queue.getJobScheduler(schedulerId))!.next!;

    // The run due then is taken, and the next one scheduled, within the health check's rounds;
    // BullMQ alone would block again for 10 s before looking (SWEEP_INTERVAL_MS is 200 here).
    await expect.poll(async () => (await queue.getJobScheduler(schedulerId))?.next, { timeout: 7000, interval: 100 }).toBeGreaterThan(due);
  });
});

it('schedules a run again when the next one is lost and the scheduler kept, and the sweep goes on', { timeout: 60_000 }, async ({ cluster, url, connect, startWorker }) => {
  await startWorker({ POD_NAME: 'job-reschedule' });
  await withSweepQueue(cluster, async ({ redis, queue, schedulerId }) => {
    // As when BullMQ took a run and its own call scheduling the next one failed (a failover):
    // the scheduler stays, no run is pending. A run taken meanwhile schedules its next one
    // after: removed again until nothing is pending or running.
    // The runs are listed, not guessed from the scheduler's `next`: what is pending is removed
    // whatever its id, and a failure says what stayed.
    const pendingRuns = async () => {
      const runs: { state: string; id: string }[] = [];
      for (const state of ['waiting', 'delayed', 'prioritized', 'active'] as const) {
        for (const job of await queue.getJobs([state])) runs.push({ state, id: job.id! });
      }
      return runs;
    };
    let pending = await pendingRuns();
    for (let attempt = 0; attempt < 50 && pending.length > 0; attempt++) {
      // BullMQ refuses to remove a scheduler's run: its keys go, as if never written. An active
      // run is left to finish (it schedules its next one, removed in a later round).
      const removal = redis.multi();
      for (const { id } of pending.filter((run) => run.state !== 'active')) {
        removal.zrem(queue.keys.delayed!, id).lrem(queue.keys.wait!, 0, id).zrem(queue.keys.prioritized!, id).del(queue.toKey(id));
      }
      await removal.exec();
      await sleep(300);
      pending = await pendingRuns();
    }
    expect(pending).toEqual([]);
    expect(await queue.getJobScheduler(schedulerId)).toBeTruthy();

    await shortRoomExpiresWithin(url, connect, 25_000);
  });
});
