import type { Logger } from 'pino';
import { inject } from 'vitest';
import { loadWorkerConfig, startWorker, type WorkerApp } from '@chat/worker';
import { testWorkerEnv, uniquePrefix, type ClusterServices } from '@chat/testing';

const started = new Set<WorkerApp>();

/** What a worker test without gateways runs on: its own database, the suite's Redis (and bus), a key prefix of its own. */
export function workerServices(databaseUrl: string, prefixName: string): ClusterServices {
  return {
    databaseUrl,
    redisUrl: inject('redisUrl'),
    redisPrefix: uniquePrefix(prefixName),
    busClusterNodes: inject('busClusterNodes') || null,
  };
}

/**
 * The worker app in this process, on the cluster's database, Redis and key prefix, with a
 * fast sweep so expiry tests take seconds. `env` overrides any worker setting.
 */
export async function startTestWorker(
  cluster: ClusterServices,
  env: Record<string, string> = {},
  options: { logger?: (pod: string) => Logger } = {},
): Promise<WorkerApp> {
  const config = loadWorkerConfig({
    ...testWorkerEnv(cluster),
    SHUTDOWN_TIMEOUT_MS: '5000',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    POD_NAME: `test-worker-${started.size}`,
    ...env,
  });
  const worker = await startWorker(config, options.logger ? { logger: options.logger(config.podName) } : {});
  started.add(worker);
  const close = worker.close.bind(worker);
  // Idempotent: a test may close its worker and the `startWorker` fixture close it again.
  let closing: Promise<void> | null = null;
  return {
    ...worker,
    close: () => {
      started.delete(worker);
      closing ??= close();
      return closing;
    },
  };
}

/** Closes every worker startTestWorker started and that is still running (for afterAll). */
export async function closeAllWorkers(): Promise<void> {
  const workers = [...started];
  started.clear();
  await Promise.allSettled(workers.map((worker) => worker.close()));
}
