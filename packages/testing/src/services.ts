import { randomBytes } from 'node:crypto';

/** The signing secret of every pod the test helpers start, in process or as a child process. */
export const TEST_JWT_SECRET = 'test-secret-that-is-long-enough-0123456789';

/** Where a cluster's pods meet: one Postgres database and one Redis key prefix. */
export interface ClusterServices {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
}

export function uniquePrefix(label = 't'): string {
  return `test:${label}:${randomBytes(4).toString('hex')}`;
}

/** A worker's environment on the cluster's services, sweeping fast so expiry tests take seconds. */
export function testWorkerEnv(cluster: ClusterServices): Record<string, string> {
  return {
    DATABASE_URL: cluster.databaseUrl,
    REDIS_URL: cluster.redisUrl,
    REDIS_PREFIX: cluster.redisPrefix,
    METRICS_PORT: '0',
    SWEEP_INTERVAL_MS: '200',
    PRESENCE_GC_INTERVAL_MS: '500',
  };
}
