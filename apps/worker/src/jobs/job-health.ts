import type { Logger } from 'pino';
import { JOB_CATALOG, JOB_KEYS, type JobKey } from '@chat/jobs';
import type { JobDefinitions } from './job-definitions.ts';
import { schedulerId, type JobRunner } from './job-runner.ts';

/** How often Redis is asked whether every job scheduler is there and its runs are on time. */
const HEALTH_CHECK_MS = 2500;

/**
 * A scheduled run overdue this long, with Redis answering, gets the queue's workers woken: a
 * worker takes a due run within milliseconds, so this is never a run that is merely on its way.
 */
const WAKE_AFTER_MS = 1000;

/** A scheduled run overdue this long, with Redis answering, means the workers are stuck. */
function stalledAfterMs(everyMs: number): number {
  return Math.max(10_000, 5 * everyMs);
}

/**
 * Keeps the runner's jobs running through what BullMQ does not notice by itself. A Redis that
 * lost its data without the connection noticing (a Redis Cluster master restarted empty: the
 * cluster client stays ready; a managed failover behind one address) took the schedulers with
 * it, and no sweep would ever run again: they are looked for, and put back, every few seconds
 * (one read per queue). A scheduled run overdue by a second while Redis answers, no worker
 * here running it, gets the queue's workers woken: after its blocking read failed (the
 * `UNBLOCKED` a Redis failover sends to blocked clients, a dropped connection) a BullMQ worker
 * no longer knows when the next run is due and sleeps its 10 s ceiling before looking, so every
 * state failover held the sweep up 10 s or more. And a run overdue by `stalledAfterMs(everyMs)`
 * while Redis answers (no replica took it), its worker here running nothing, means that worker
 * is stuck: BullMQ's blocking wait for the next job, sent to a Redis Cluster master that then
 * died, could stay unanswered for good after the master came back (fault scenario 9: no job ran
 * again in 4 of 5 runs). That worker is replaced, and the job's schedule renewed in case the
 * lost piece is the next run itself. The schedulers' `next` is the signal, not this replica's
 * own work: with several replicas one of them takes each run. Returns the stop.
 */
export function watchJobHealth(options: { runner: JobRunner; jobs: JobDefinitions; logger: Logger }): () => void {
  const { runner, jobs, logger } = options;
  /** Since when Redis has answered every health check, null while it does not. */
  let answeringSince: number | null = Date.now();

  function kickIfOverdue(key: JobKey, index: number, overdueMs: number): void {
    if (overdueMs < WAKE_AFTER_MS || runner.isRunning(index)) return;
    const queue = JOB_CATALOG[key].queue;
    if (overdueMs >= stalledAfterMs(jobs[key].everyMs ?? 0)) {
      logger.warn({ queue, overdueMs }, 'job worker stalled: replaced, the schedule renewed');
      runner.replaceWorker(index);
      // The run may be what is missing, not a worker: BullMQ schedules a job's next run in a
      // call of its own after taking it, and when that call fails (its Redis failing over) the
      // schedule ends there, its last run left to the stalled-job check 30 s later or more.
      runner.reschedule(index).catch((error: unknown) => logger.warn({ err: error, queue }, 'reschedule failed'));
      return;
    }
    logger.info({ queue, overdueMs }, 'job run overdue: workers woken');
    runner.wake(index).catch((error: unknown) => logger.debug({ err: error, queue }, 'wake failed'));
  }

  let checking = false;
  const timer = setInterval(() => {
    // One at a time: a check waiting on a frozen Redis is not joined by more.
    if (checking) return;
    checking = true;
    const started = Date.now();
    void Promise.all(
      JOB_KEYS.map((key, index) =>
        jobs[key].everyMs === null ? null : runner.queues[index]!.getJobScheduler(schedulerId(key)).then((scheduler) => scheduler ?? 'missing'),
      ),
    )
      .then(
        async (schedulers) => {
          const now = Date.now();
          // A slow answer (Redis frozen, then back): runs were held up by Redis, not by a worker.
          answeringSince = answeringSince === null || now - started > HEALTH_CHECK_MS ? now : answeringSince;
          if (schedulers.includes('missing')) {
            await runner.upsertSchedulers('a job scheduler was missing from Redis');
            return;
          }
          schedulers.forEach((scheduler, index) => {
            if (scheduler === null || scheduler === 'missing' || !scheduler.next) return;
            kickIfOverdue(JOB_KEYS[index]!, index, now - Math.max(scheduler.next, answeringSince!));
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
  timer.unref();
  return () => clearInterval(timer);
}
