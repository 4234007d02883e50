import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { inject } from 'vitest';
import { buildGateway, loadConfig, type Gateway } from '@chat/gateway';
import { TEST_JWT_SECRET, busEnv, startTcpRelay, uniquePrefix, type ClusterServices, type TcpRelay } from '@chat/testing';

export interface TestPod {
  gateway: Gateway;
  url: string;
}

export interface TestCluster extends ClusterServices {
  pods: TestPod[];
  close(): Promise<void>;
}

/**
 * N gateway pods in this process on one Postgres database and one Redis (with a key prefix of
 * their own), as in production: they only meet through the Redis adapter and the database.
 * Their bus is the run's (TEST_BUS=cluster: a Redis Cluster; else REDIS_URL).
 */
export async function startCluster(
  pods = 2,
  env: Record<string, string> = {},
  options: { logger?: (pod: string) => Logger } = {},
): Promise<TestCluster> {
  const databaseUrl = env.DATABASE_URL ?? inject('databaseUrl');
  // A test may bring its own Redis (one it can restart): REDIS_URL in env wins everywhere.
  const redisUrl = env.REDIS_URL ?? inject('redisUrl');
  const redisPrefix = env.REDIS_PREFIX ?? uniquePrefix();
  // The run's bus (TEST_BUS): a test may set its own, '' for a bus on REDIS_URL.
  const busClusterNodes = (env.REDIS_BUS_CLUSTER_NODES ?? inject('busClusterNodes')) || null;
  const started: TestPod[] = [];
  for (let index = 0; index < pods; index++) {
    const podName = `test-pod-${index}`;
    const config = loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      POD_NAME: podName,
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redisPrefix,
      ...busEnv({ busClusterNodes }),
      JWT_SECRET: TEST_JWT_SECRET,
      AUTH_DEV_LOGIN: 'true',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      CORS_ORIGINS: 'http://allowed.example',
      DATABASE_POOL_SIZE: '4',
      ...env,
    });
    const gateway = await buildGateway(config, options.logger ? { logger: options.logger(podName) } : {});
    await gateway.http.listen({ port: 0, host: '127.0.0.1' });
    const { port } = gateway.http.server.address() as AddressInfo;
    started.push({ gateway, url: `http://127.0.0.1:${port}` });
  }
  return {
    pods: started,
    redisPrefix,
    databaseUrl,
    redisUrl,
    busClusterNodes,
    async close() {
      await Promise.all(started.map((pod) => pod.gateway.close()));
    },
  };
}

/**
 * Two one-pod clusters on one key prefix: pod A reaches Redis (state and bus, the bus on
 * REDIS_URL whatever the run's TEST_BUS) through a relay the test can cut or freeze, pod B
 * directly. `close` closes the relay first: a frozen connection would hold pod A's QUIT.
 */
export async function startRelayedPair(name: string): Promise<{ relay: TcpRelay; podA: TestCluster; podB: TestCluster; close(): Promise<void> }> {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix(name);
  const relay = await startTcpRelay(redisUrl);
  const podA = await startCluster(1, { REDIS_URL: relay.url, REDIS_PREFIX: prefix, POD_NAME: `${name}-pod-a`, REDIS_BUS_CLUSTER_NODES: '' });
  const podB = await startCluster(1, { REDIS_URL: redisUrl, REDIS_PREFIX: prefix, POD_NAME: `${name}-pod-b`, REDIS_BUS_CLUSTER_NODES: '' });
  return {
    relay,
    podA,
    podB,
    async close() {
      await relay.close();
      await Promise.all([podA.close(), podB.close()]);
    },
  };
}
