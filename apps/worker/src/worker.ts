import { Emitter } from '@socket.io/redis-emitter';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import pino, { type Logger } from 'pino';
import {
  createDatabase,
  createMessagePartitionsRepository,
  createMembershipsRepository,
  createMessagesRepository,
  createRoomExpiryRepository,
  createUsersRepository,
} from '@chat/db';
import { JOB_CATALOG, JOB_KEYS, bullPrefix, type JobKey, type JobPayload } from '@chat/jobs';
import { createPresenceStore } from '@chat/presence';
import type { WorkerConfig } from './config.ts';
import { runPresenceGc } from './jobs/presence-gc.job.ts';
import { createWorkerMetrics, serveWorkerMetrics } from './metrics.ts';
import { runRoomSweep } from './jobs/room-sweep.job.ts';
import { runPartitionMaintenance } from './jobs/partition-maintenance.job.ts';

/** A gateway pod's heartbeat older than this means the pod is gone. */
export const PRESENCE_STALE_AFTER_MS = 15_000;

type Handlers = { [K in JobKey]: (payload: JobPayload<K>) => Promise<unknown> };

export interface WorkerApp {
  logger: Logger;
  /** Lets the current jobs finish, then closes workers, queues, Redis and Postgres. */
  close(): Promise<void>;
}

export async function startWorker(config: Readonly<WorkerConfig>, options: { logger?: Logger } = {}): Promise<WorkerApp> {
  const logger = options.logger ?? pino({ level: config.logLevel, base: { pod: config.podName } });
  const database = createDatabase({ url: config.databaseUrl, maxConnections: 4, applicationName: config.podName });
  const retryStrategy = (attempt: number) => Math.min(200 * attempt, 2000);
  // Workers block on Redis and must wait out an outage; producers and emitters fail fast.
  const workerConnection = new Redis(config.redisUrl, { maxRetriesPerRequest: null, retryStrategy });
  const producerConnection = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, retryStrategy });
  const emitterConnection = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, retryStrategy });
  for (const [name, client] of Object.entries({ workerConnection, producerConnection, emitterConnection })) {
    let last = 0;
    client.on('error', (error: Error) => {
      if (Date.now() - last < 5000) return;
      last = Date.now();
      logger.warn({ err: error, client: name }, 'redis client error');
    });
  }

  // The emitter publishes without awaiting: a publish that fails during a Redis outage would be
  // an unhandled rejection. Announcements are at-most-once anyway, so log and move on.
  const emitterClient = {
    publish: (channel: string, message: string | Buffer) =>
      emitterConnection.publish(channel, message).catch((error: unknown) => {
        logger.warn({ err: error }, 'emit lost while Redis is unavailable');
        return 0;
      }),
  };
  const emitter = new Emitter(emitterClient, { key: `${config.redisPrefix}:socket.io` });
  const memberships = createMembershipsRepository(database.sql);
  const messages = createMessagesRepository(database.sql);
  const users = createUsersRepository(database.db);
  const expiry = createRoomExpiryRepository(database.sql);
  const partitions = createMessagePartitionsRepository(database.sql);
  const presence = createPresenceStore(emitterConnection, config.redisPrefix);

  const metrics = createWorkerMetrics();
  const handlers: Handlers = {
    roomSweep: async () => {
      const result = await runRoomSweep({
        expiry,
        emitter,
        logger,
        expiringNoticeMs: config.expiringNoticeMs,
        tombstoneTtlMs: config.tombstoneTtlMs,
        batchSize: config.sweepBatchSize,
      });
      metrics.roomsExpired.inc(result.expired);
      metrics.rowsPurged.inc({ table: 'room_members' }, result.membersPurged);
      metrics.rowsPurged.inc({ table: 'rooms' }, result.tombstonesDeleted);
      return result;
    },
    presenceGc: async () => {
      const result = await runPresenceGc({
        presence,
        memberships,
        messages,
        users,
        emitter,
        logger,
        staleAfterMs: PRESENCE_STALE_AFTER_MS,
      });
      metrics.presenceOffline.inc(result.offline);
      metrics.deadPodResyncs.inc(result.resyncedRooms);
      // Counted above even so: the pods that were announced in this run stay announced.
      if (result.failure) throw result.failure;
      return result;
    },
    partitionMaintenance: async () => {
      const result = await runPartitionMaintenance({ partitions, logger });
      metrics.rowsPurged.inc({ table: 'messages' }, result.rowsDropped);
      return result;
    },
  };
  const intervals: Record<JobKey, number> = {
    roomSweep: config.sweepIntervalMs,
    presenceGc: config.presenceGcIntervalMs,
    partitionMaintenance: JOB_CATALOG.partitionMaintenance.everyMs,
  };
  // Once at start too, before any schedule: the day partitions exist as soon as a worker runs.
  await handlers.partitionMaintenance({}).catch((error: unknown) => logger.warn({ err: error }, 'partition maintenance at start failed'));

  const prefix = bullPrefix(config.redisPrefix);
  const queues = JOB_KEYS.map((key) => {
    const queue = new Queue(JOB_CATALOG[key].queue, { connection: producerConnection, prefix });
    // Without a listener BullMQ prints every connection error of an outage with console.error.
    queue.on('error', (error) => logger.debug({ err: error, queue: JOB_CATALOG[key].queue }, 'queue error'));
    return queue;
  });

  // Idempotent: every boot, and every reconnect (a Redis that lost its data loses schedulers).
  async function upsertSchedulers(): Promise<void> {
    await Promise.all(
      JOB_KEYS.map((key, index) =>
        queues[index]!.upsertJobScheduler(
          `${JOB_CATALOG[key].queue}-every`,
          { every: intervals[key] },
          { name: JOB_CATALOG[key].jobName, data: {}, opts: JOB_CATALOG[key].options },
        ),
      ),
    );
  }
  await upsertSchedulers();
  producerConnection.on('ready', () => {
    upsertSchedulers().catch((error: unknown) => logger.warn({ err: error }, 'scheduler upsert failed'));
  });

  const workers = JOB_KEYS.map((key) => {
    const entry = JOB_CATALOG[key];
    const worker = new Worker(
      entry.queue,
      async (job: Job) => {
        const payload = entry.payload.parse(job.data);
        const stopTimer = metrics.jobDuration.startTimer({ queue: entry.queue });
        try {
          return await (handlers[key] as (payload: unknown) => Promise<unknown>)(payload);
        } finally {
          stopTimer();
        }
      },
      // `name` is stored on each job as `processedBy`: which replica ran a sweep is visible in Redis.
      { connection: workerConnection, prefix, concurrency: config.concurrency, autorun: true, name: config.podName },
    );
    worker.on('failed', (job, error) => {
      metrics.jobFailures.inc({ queue: entry.queue });
      logger.error({ err: error, queue: entry.queue, jobId: job?.id }, 'job failed');
    });
    worker.on('error', (error) => logger.warn({ err: error, queue: entry.queue }, 'worker error'));
    return worker;
  });
  const metricsServer = await serveWorkerMetrics(metrics, config.metricsPort, config.metricsHost, async () => {
    await Promise.all(
      queues.map(async (queue) => {
        const counts = await queue.getJobCounts('waiting', 'delayed', 'prioritized');
        const depth = Object.values(counts).reduce((sum, count) => sum + count, 0);
        metrics.queueDepth.set({ queue: queue.name }, depth);
      }),
    );
  });
  logger.info(
    { queues: JOB_KEYS.map((key) => JOB_CATALOG[key].queue), metricsPort: metricsServer.port },
    'worker started',
  );

  let closing: Promise<void> | null = null;
  return {
    logger,
    close() {
      closing ??= (async () => {
        await Promise.all(workers.map((worker) => worker.close()));
        await new Promise((resolve) => metricsServer.server.close(resolve));
        await Promise.all(queues.map((queue) => queue.close()));
        await Promise.allSettled([workerConnection.quit(), producerConnection.quit(), emitterConnection.quit()]);
        await database.close();
      })();
      return closing;
    },
  };
}
