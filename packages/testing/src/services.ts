import { randomBytes } from 'node:crypto';

/** The signing secret of every pod the test helpers start, in process or as a child process. */
export const TEST_JWT_SECRET = 'test-secret-that-is-long-enough-0123456789';

/** Where a cluster's pods meet: one Postgres database, one Redis key prefix, one message bus. */
export interface ClusterServices {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  /**
   * `host:port,…` of the Redis Cluster carrying the Socket.IO bus (REDIS_BUS_CLUSTER_NODES),
   * or null for a bus on `redisUrl`. A run with TEST_BUS=cluster gives every cluster one.
   */
  busClusterNodes: string | null;
}

/** The bus variable of an app on these services (none: the bus is REDIS_URL). */
export function busEnv(services: Pick<ClusterServices, 'busClusterNodes'>): Record<string, string> {
  return services.busClusterNodes ? { REDIS_BUS_CLUSTER_NODES: services.busClusterNodes } : {};
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
    ...busEnv(cluster),
    METRICS_PORT: '0',
    SWEEP_INTERVAL_MS: '200',
    PRESENCE_GC_INTERVAL_MS: '500',
  };
}
