import type { Logger } from 'pino';
import { JOB_CATALOG, JOB_KEYS } from '@chat/jobs';
import type { WorkerConfig } from './config.ts';
import { buildWorkerDeps } from './deps.ts';
import { serveWorkerMetrics } from './http/metrics-server.ts';
import { defineJobs } from './jobs/job-definitions.ts';
import { watchJobHealth } from './jobs/job-health.ts';
import { readQueueDepths, startJobRunner } from './jobs/job-runner.ts';
import { createShutdown } from './shutdown.ts';

export interface WorkerApp {
  logger: Logger;
  /** Lets the current jobs finish, then closes workers, queues, Redis and Postgres. */
  close(): Promise<void>;
}

/**
 * Starts the worker: the composition root. What is built is in deps.ts, each job in jobs/
 * (listed in job-definitions.ts), the order of shutdown in shutdown.ts.
 */
export async function startWorker(config: Readonly<WorkerConfig>, options: { logger?: Logger } = {}): Promise<WorkerApp> {
  const deps = buildWorkerDeps(config, options);
  const { logger, metrics } = deps;
  const jobs = defineJobs(config, deps);
  // Once before any schedule: the day partitions of `messages` exist as soon as a worker runs.
  await jobs.partitionMaintenance.run({}).catch((error: unknown) => logger.warn({ err: error }, 'partition maintenance at start failed'));
  const runner = await startJobRunner({
    jobs,
    producer: deps.redis.producer,
    consumer: deps.redis.worker,
    stateKeyPrefix: config.stateKeyPrefix,
    concurrency: config.concurrency,
    podName: config.podName,
    metrics,
    logger,
  });
  const stopJobHealth = watchJobHealth({ runner, jobs, logger });
  const metricsServer = await serveWorkerMetrics(metrics, config.metricsPort, config.metricsHost, () =>
    readQueueDepths(runner.queues, metrics),
  );
  logger.info(
    { queues: JOB_KEYS.map((key) => JOB_CATALOG[key].queue), metricsPort: metricsServer.port },
    'worker started',
  );
  return { logger, close: createShutdown({ runner, stopJobHealth, metricsServer: metricsServer.server, deps }) };
}
