import { defineConfig } from 'vitest/config';

/**
 * Files whose Redis does not follow TEST_BUS: they set their own bus (a cluster, Sentinel or TLS
 * server they start, or REDIS_URL through a relay) or use no bus at all. `pnpm test` runs them;
 * `pnpm test:cluster-bus` (TEST_BUS=cluster) would only run the same test a second time.
 */
const BUS_INDEPENDENT = [
  'test/cluster/redis-cluster-failover.test.ts',
  'test/cluster/state-cluster.test.ts',
  'test/cluster/redis-tls.test.ts',
  'test/cluster/sentinel-failover.test.ts',
  'test/cluster/redis-blackhole.test.ts',
  'test/cluster/publish-gap.test.ts',
  'test/worker/state-redis-blackhole.test.ts',
  'test/worker/room-expired-announce.test.ts',
  'test/worker/earlier-expiries.test.ts',
  'test/worker/job-metrics.test.ts',
  'test/worker/partition-default-move.test.ts',
  'test/worker/partitions.test.ts',
  'test/worker/room-sweep-extend.test.ts',
  'test/worker/webhook-endpoint-sync.test.ts',
  'test/worker/webhook-lanes.test.ts',
];

export default defineConfig({
  test: {
    include: ['apps/*/test/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'test/faults/**', 'test/bench/**', ...(process.env.TEST_BUS === 'cluster' ? BUS_INDEPENDENT : [])],
    globalSetup: ['packages/testing/src/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
