import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { TestProject } from 'vitest/node';
import { dropDatabase, ensureDatabase, runMigrations } from '@chat/db';
import { startRedisCluster } from './redis-cluster.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    redisUrl: string;
    /** `host:port,…` of the run's bus cluster (TEST_BUS=cluster), or '' for a bus on redisUrl. */
    busClusterNodes: string;
  }
}

/**
 * One fresh database per test run, migrated from the committed SQL and dropped at the end,
 * so runs on a shared Postgres never collide. Redis keys are isolated by a prefix per cluster.
 * With TEST_BUS=cluster (`pnpm test:cluster-bus`) the run also starts a three-master Redis
 * Cluster on free loopback ports, the bus of every test cluster, removed at the end.
 */
export default async function setup(project: TestProject) {
  const base = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const url = new URL(base);
  url.pathname = `/chat_test_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const databaseUrl = url.toString();
  await ensureDatabase(databaseUrl);
  await runMigrations(databaseUrl);
  project.provide('databaseUrl', databaseUrl);
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  await requireNoEviction(redisUrl);
  project.provide('redisUrl', redisUrl);
  const bus = process.env.TEST_BUS ?? 'standalone';
  if (bus !== 'standalone' && bus !== 'cluster') throw new Error(`TEST_BUS is standalone or cluster, not "${bus}"`);
  const busCluster = bus === 'cluster' ? await startRedisCluster() : null;
  project.provide('busClusterNodes', busCluster?.nodesString ?? '');
  return async () => {
    await busCluster?.close();
    await dropDatabase(databaseUrl);
  };
}

/** BullMQ loses jobs and schedulers if Redis evicts keys: the tests' Redis must not (as in infra/local-cluster.ts). */
async function requireNoEviction(url: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.config('SET', 'maxmemory-policy', 'noeviction').catch(() => undefined);
    // A Redis that refuses CONFIG SET may still be configured right in redis.conf.
    const [, policy] = (await redis.config('GET', 'maxmemory-policy')) as string[];
    if (policy !== 'noeviction') throw new Error(`test Redis ${url} has maxmemory-policy ${policy}; BullMQ needs noeviction`);
  } finally {
    redis.disconnect();
  }
}
