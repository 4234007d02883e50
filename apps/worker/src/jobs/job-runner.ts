import { Queue, Worker, type Job } from 'bullmq';
import type { StateClient } from '@chat/bus';
import type { Logger } from 'pino';
import { JOB_CATALOG, JOB_KEYS, bullPrefix } from '@chat/jobs';
import type { WorkerMetrics } from '../metrics.ts';
import type { JobDefinitions } from './job-definitions.ts';

export interface JobRunner {
  queues: Queue[];
  workers: Worker[];
}

/**
 * One BullMQ queue, job scheduler and worker per job of the catalog: the schedulers add a run
 * every `everyMs` (one run at a time across worker replicas), the workers run them.
 */
export async function startJobRunner(options: {
  jobs: JobDefinitions;
  producer: StateClient;
  consumer: StateClient;
  /** BullMQ's keys go under `bullPrefix(stateKeyPrefix)`. */
  stateKeyPrefix: string;
  concurrency: number;
  podName: string;
  metrics: WorkerMetrics;
  logger: Logger;
}): Promise<JobRunner> {
  const { jobs, producer, metrics, logger } = options;
  const prefix = bullPrefix(options.stateKeyPrefix);
  const queues = JOB_KEYS.map((key) => {
    const queue = new Queue(JOB_CATALOG[key].queue, { connection: producer, prefix });
    // Without a listener BullMQ prints every connection error of an outage with console.error.
    queue.on('error', (error) => logger.debug({ err: error, queue: JOB_CATALOG[key].queue }, 'queue error'));
    return queue;
  });

  // Idempotent: every boot, and every reconnect (a Redis that lost its data loses schedulers).
  async function upsertSchedulers(): Promise<void> {
    await Promise.all(
      JOB_KEYS.map((key, index) => {
        const everyMs = jobs[key].everyMs;
        // Not scheduled: other jobs add its runs (a webhook delivery).
        if (everyMs === null) return undefined;
        return queues[index]!.upsertJobScheduler(
          `${JOB_CATALOG[key].queue}-every`,
          { every: everyMs },
          { name: JOB_CATALOG[key].jobName, data: {}, opts: JOB_CATALOG[key].options },
        );
      }),
    );
  }
  await upsertSchedulers();
  producer.on('ready', () => {
    upsertSchedulers().catch((error: unknown) => logger.warn({ err: error }, 'scheduler upsert failed'));
  });

  const workers = JOB_KEYS.map((key) => {
    const entry = JOB_CATALOG[key];
    const run = jobs[key].run as (payload: unknown) => Promise<unknown>;
    const worker = new Worker(
      entry.queue,
      async (job: Job) => {
        const payload = entry.payload.parse(job.data);
        const stopTimer = metrics.jobDuration.startTimer({ queue: entry.queue });
        try {
          return await run(payload);
        } finally {
          stopTimer();
        }
      },
      // `name` is stored on each job as `processedBy`: which replica ran a sweep is visible in Redis.
      { connection: options.consumer, prefix, concurrency: jobs[key].concurrency ?? options.concurrency, autorun: true, name: options.podName },
    );
    worker.on('failed', (job, error) => {
      metrics.jobFailures.inc({ queue: entry.queue });
      logger.error({ err: error, queue: entry.queue, jobId: job?.id }, 'job failed');
    });
    worker.on('error', (error) => logger.warn({ err: error, queue: entry.queue }, 'worker error'));
    return worker;
  });
  return { queues, workers };
}

/** Queue depths for the scrape: waiting, delayed and prioritized jobs of each queue. */
export async function readQueueDepths(queues: Queue[], metrics: WorkerMetrics): Promise<void> {
  await Promise.all(
    queues.map(async (queue) => {
      const counts = await queue.getJobCounts('waiting', 'delayed', 'prioritized');
      const depth = Object.values(counts).reduce((sum, count) => sum + count, 0);
      metrics.queueDepth.set({ queue: queue.name }, depth);
    }),
  );
}
