import type { Server } from 'node:http';
import type { WorkerDeps } from './deps.ts';
import type { JobRunner } from './jobs/job-runner.ts';

/**
 * The shutdown order: no more health checks (they would replace closing workers), the running
 * jobs told to stop at their next safe point and awaited (workers), then the metrics server, the queues, Redis and Postgres, each after what
 * uses it. Idempotent.
 */
export function createShutdown(parts: { runner: JobRunner; stopJobHealth: () => void; metricsServer: Server; deps: WorkerDeps }): () => Promise<void> {
  const { runner, metricsServer, deps } = parts;
  let closing: Promise<void> | null = null;
  return () => {
    closing ??= (async () => {
      parts.stopJobHealth();
      runner.stopJobs();
      await Promise.all(runner.workers.map((worker) => worker.close()));
      await new Promise((resolve) => metricsServer.close(resolve));
      await Promise.all([...runner.queues, ...Object.values(deps.queues)].map((queue) => queue.close()));
      await deps.redis.close();
      await deps.database.close();
    })();
    return closing;
  };
}
