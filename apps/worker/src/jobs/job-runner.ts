import { Queue, Worker, type Job } from 'bullmq';
import type { StateClient } from '@chat/bus';
import type { Logger } from 'pino';
import { JOB_CATALOG, JOB_KEYS, bullPrefix, type JobKey } from '@chat/jobs';
import type { WorkerMetrics } from '../metrics.ts';
import type { JobDefinitions } from './job-definitions.ts';

export interface JobRunner {
  queues: Queue[];
  /** This process's worker of each queue, in JOB_KEYS order (one may be replaced). */
  workers: Worker[];
  /** Puts every job scheduler in Redis (idempotent); logs why when it is a repair. */
  upsertSchedulers(why?: string): Promise<void>;
  /**
   * Puts JOB_KEYS[index]'s scheduler in Redis again, and with it a pending run when its next one
   * is gone (taken, but never followed by the one after); a pending run it has stays as it is.
   */
  reschedule(index: number): Promise<void>;
  /** Whether this process's worker of JOB_KEYS[index] is running a job now. */
  isRunning(index: number): boolean;
  /** Closes (forcefully, not awaited) this process's worker of JOB_KEYS[index] and starts another. */
  replaceWorker(index: number): void;
  /** Wakes every worker (any replica) blocked waiting on JOB_KEYS[index]'s queue. */
  wake(index: number): Promise<void>;
  /** Tells the running jobs the worker is stopping: long ones stop at their next safe point. */
  stopJobs(): void;
}

/**
 * One BullMQ queue, job scheduler and worker per job of the catalog: the schedulers add a run
 * every `everyMs` (one run at a time across worker replicas), the workers run them. Keeping them
 * there when Redis loses them or a worker hangs is job-health.ts's.
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

  async function upsert(index: number): Promise<void> {
    const key = JOB_KEYS[index]!;
    const everyMs = jobs[key].everyMs;
    // Not scheduled: other jobs add its runs (a webhook delivery).
    if (everyMs === null) return;
    await queues[index]!.upsertJobScheduler(
      schedulerId(key),
      { every: everyMs },
      { name: JOB_CATALOG[key].jobName, data: {}, opts: JOB_CATALOG[key].options },
    );
  }
  const upsertAll = () => Promise.all(JOB_KEYS.map((_, index) => upsert(index)));
  await upsertAll();
  const upsertSchedulers = (why?: string) =>
    upsertAll().then(
      () => {
        if (why) logger.info({ why }, 'job schedulers registered again');
      },
      (error: unknown) => logger.warn({ err: error }, 'scheduler upsert failed'),
    );
  // Idempotent, so on every reconnect too: a Redis that lost its data lost the schedulers.
  producer.on('ready', () => void upsertSchedulers('Redis connection ready again'));

  /** Jobs each worker is running now: a worker busy with a long job is not stalled. */
  const running = JOB_KEYS.map(() => 0);
  const stopping = new AbortController();
  const startWorker = (key: JobKey, index: number): Worker => {
    const entry = JOB_CATALOG[key];
    const run = jobs[key].run as (payload: unknown, stopping: AbortSignal) => Promise<unknown>;
    const worker = new Worker(
      entry.queue,
      async (job: Job) => {
        const payload = entry.payload.parse(job.data);
        const stopTimer = metrics.jobDuration.startTimer({ queue: entry.queue });
        running[index]!++;
        try {
          const result = await run(payload, stopping.signal);
          // Completed runs only: ChatRoomSweepStalled reads this count as "sweeps that ran", and
          // a sweep failing on every run (counted in jobFailures) expires no room either.
          stopTimer();
          return result;
        } finally {
          running[index]!--;
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

  return {
    queues,
    workers,
    upsertSchedulers,
    reschedule: upsert,
    isRunning: (index) => running[index]! > 0,
    replaceWorker(index) {
      // Not awaited: closing may wait on the very call that hangs; the force disconnects it.
      void workers[index]!.close(true).catch(() => undefined);
      workers[index] = startWorker(JOB_KEYS[index]!, index);
    },
    stopJobs: () => stopping.abort(),
    async wake(index) {
      // What BullMQ's own addJob does for a waiting job: a worker's blocking read takes the
      // queue's marker and looks for due work at once, promoting due delayed runs.
      await producer.zadd(queues[index]!.keys.marker!, 0, '0');
    },
  };
}

/** The id of a job's scheduler in its queue. */
export function schedulerId(key: JobKey): string {
  return `${JOB_CATALOG[key].queue}-every`;
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
