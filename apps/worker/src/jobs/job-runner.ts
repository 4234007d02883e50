import { Queue, Worker, type Job } from 'bullmq';
import type { StateClient } from '@chat/bus';
import type { Logger } from 'pino';
import { JOB_CATALOG, JOB_KEYS, bullPrefix, type JobKey } from '@chat/jobs';
import type { WorkerMetrics } from '../metrics.ts';
import type { JobDefinitions } from './job-definitions.ts';

export interface JobRunner {
  queues: Queue[];
  workers: Worker[];
  /** Stops looking for lost schedulers (before the queues close). */
  stop(): void;
}

/** How often the runner checks that Redis still holds every job scheduler and the workers run. */
const HEALTH_CHECK_MS = 2500;

/** A scheduled run overdue this long, with Redis answering, means the workers are stuck. */
function stalledAfterMs(everyMs: number): number {
  return Math.max(10_000, 5 * everyMs);
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
  const reUpsert = (why: string) =>
    upsertSchedulers().then(
      () => logger.info({ why }, 'job schedulers registered again'),
      (error: unknown) => logger.warn({ err: error }, 'scheduler upsert failed'),
    );
  producer.on('ready', () => void reUpsert('Redis connection ready again'));

  /** Jobs each worker is running now: a worker busy with a long job is not stalled. */
  const running = JOB_KEYS.map(() => 0);
  const startWorker = (key: JobKey, index: number): Worker => {
    const entry = JOB_CATALOG[key];
    const run = jobs[key].run as (payload: unknown) => Promise<unknown>;
    const worker = new Worker(
      entry.queue,
      async (job: Job) => {
        const payload = entry.payload.parse(job.data);
        const stopTimer = metrics.jobDuration.startTimer({ queue: entry.queue });
        running[index]!++;
        try {
          return await run(payload);
        } finally {
          running[index]!--;
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
  };
  const workers = JOB_KEYS.map(startWorker);

  /**
   * Replaces this process's worker of a scheduled job whose run is overdue by
   * `stalledAfterMs(everyMs)` while Redis answers (no replica took it) and which runs nothing:
   * BullMQ's blocking wait for the next job, sent to a Redis Cluster master that then died, could
   * stay unanswered for good after the master came back (fault scenario 9: no job ran again in
   * 4 of 5 runs), with the worker waiting on it. Its schedulers' `next` is the signal, not this
   * replica's own work: with several replicas one of them takes each run.
   */
  function replaceStalledWorker(key: JobKey, index: number, overdueMs: number): void {
    if (overdueMs < stalledAfterMs(jobs[key].everyMs ?? 0) || running[index]! > 0) return;
    logger.warn({ queue: JOB_CATALOG[key].queue, overdueMs }, 'job worker stalled: replaced');
    // Not awaited: closing may wait on the very call that hangs; the force disconnects it.
    void workers[index]!.close(true).catch(() => undefined);
    workers[index] = startWorker(key, index);
  }

  /** Since when Redis has answered every health check, null while it does not. */
  let answeringSince: number | null = Date.now();

  // A Redis that lost its data without the connection noticing (a Redis Cluster master restarted
  // empty: the cluster client stays ready; a managed failover behind one address) took the
  // schedulers with it, and no sweep would ever run again. Looked for, and put back, every few
  // seconds (one read per queue); and a run overdue with Redis answering means a stalled worker.
  let checking = false;
  const healthCheck = setInterval(() => {
    // One at a time: a check waiting on a frozen Redis is not joined by more.
    if (checking) return;
    checking = true;
    const started = Date.now();
    void Promise.all(
      JOB_KEYS.map((key, index) =>
        jobs[key].everyMs === null ? null : queues[index]!.getJobScheduler(`${JOB_CATALOG[key].queue}-every`).then((scheduler) => scheduler ?? 'missing'),
      ),
    )
      .then(
        async (schedulers) => {
          const now = Date.now();
          // A slow answer (Redis frozen, then back): runs were held up by Redis, not by a worker.
          answeringSince = answeringSince === null || now - started > HEALTH_CHECK_MS ? now : answeringSince;
          if (schedulers.includes('missing')) {
            await reUpsert('a job scheduler was missing from Redis');
            return;
          }
          schedulers.forEach((scheduler, index) => {
            if (scheduler === null || scheduler === 'missing' || !scheduler.next) return;
            replaceStalledWorker(JOB_KEYS[index]!, index, now - Math.max(scheduler.next, answeringSince!));
          });
        },
        // Redis away: nothing runs, and nothing is stalled; the next check tries again.
        () => {
          answeringSince = null;
        },
      )
      .finally(() => {
        checking = false;
      });
  }, HEALTH_CHECK_MS);
  healthCheck.unref();

  return { queues, workers, stop: () => clearInterval(healthCheck) };
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
