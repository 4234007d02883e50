import type { Logger } from 'pino';
import { busReady } from '@chat/bus';
import { JOB_CATALOG, JOB_KEYS } from '@chat/jobs';
import type { WorkerConfig } from './config.ts';
import { buildWorkerDeps } from './deps.ts';
import { serveWorkerMetrics } from './http/metrics-server.ts';
import { BUS_COMMAND_TIMEOUT_MS } from './infrastructure/redis-connections.ts';
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
  // The bus publisher sends now or never (redis-connections.ts): the first sweeps' announcements
  // would fail on a connection still being made. Bounded: a bus that is down must not block the start.
  await busReady(deps.redis.bus, BUS_COMMAND_TIMEOUT_MS);
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
