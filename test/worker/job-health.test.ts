import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { JOB_CATALOG, bullPrefix } from '@chat/jobs';
import { createRoom, emitAck, makeUser, nextEvent } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * The worker's job health check (apps/worker/src/jobs/job-health.ts): a job scheduler that
 * vanishes from Redis while every connection stays up — as when a Redis Cluster master restarts
 * empty, or a managed Redis fails over behind one address — is put back within seconds, and the
 * sweep runs again: a room created afterwards expires on time. Without the check no sweep would
 * ever run again (BullMQ re-creates nothing, and no connection event fires).
 */
const it = clusterTest({ pods: 1, ownDatabase: true });

it('puts back a job scheduler Redis lost, and the sweep runs again', { timeout: 45_000 }, async ({ cluster, url, connect, startWorker }) => {
  await startWorker({ POD_NAME: 'job-health' });
  const redis = new Redis(cluster.redisUrl);
  const queue = new Queue(JOB_CATALOG.roomSweep.queue, { connection: redis, prefix: bullPrefix(cluster.redisPrefix) });
  const schedulerId = `${JOB_CATALOG.roomSweep.queue}-every`;
  try {
    expect(await queue.getJobScheduler(schedulerId)).toBeTruthy();
    // As a Redis that lost its data would: the scheduler and its pending run are gone.
    await queue.removeJobScheduler(schedulerId);
    await queue.drain(true);
    expect(await queue.getJobScheduler(schedulerId)).toBeFalsy();

    await expect.poll(() => queue.getJobScheduler(schedulerId), { timeout: 15_000, interval: 250 }).toBeTruthy();

    const alice = await makeUser('김철수');
    const room = await createRoom(url, alice, { ttlSeconds: 2 });
    const socket = await connect(url, alice.token);
    const expired = nextEvent(socket, 'room-expired', 15_000);
    expect(await emitAck(socket, 'join-room', { roomId: room.roomId })).toMatchObject({ ok: true });
    expect(await expired).toMatchObject({ roomId: room.roomId });
  } finally {
    await queue.close();
    redis.disconnect();
  }
});
