import { freePort } from '@chat/testing/ports';
import { startNode, waitHttpOk, type Proc } from './procs.ts';

/** Which Socket.IO adapter the gateways run (BUS_ADAPTER): the rollback/comparison switch. */
export type BusAdapter = 'classic' | 'sharded';

export interface Pod {
  name: string;
  proc: Proc;
  url: string;
}

export interface PodEnv {
  adapter: BusAdapter;
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  jwtSecret: string;
  /** `host:port,…` of a Redis Cluster bus, or null for the bus on `redisUrl`. */
  busClusterNodes: string | null;
  /** Connections each pod may hold to Postgres: the bench runs up to 24 pods on a shared server. */
  databasePoolSize: number;
}

/**
 * One real gateway process (apps/gateway/src/main.ts) as a pod of the scaling bench: production
 * mode, quiet logs, send and membership budgets no load reaches, no drain window. Resolves once
 * /readyz answers.
 */
export async function startPod(name: string, env: PodEnv): Promise<Pod> {
  const port = await freePort();
  const proc = startNode(name, 'apps/gateway/src/main.ts', {
    PORT: String(port),
    HOST: '127.0.0.1',
    POD_NAME: name,
    BUS_ADAPTER: env.adapter,
    DATABASE_URL: env.databaseUrl,
    DATABASE_POOL_SIZE: String(env.databasePoolSize),
    REDIS_URL: env.redisUrl,
    REDIS_BUS_CLUSTER_NODES: env.busClusterNodes ?? '',
    REDIS_PREFIX: env.redisPrefix,
    JWT_SECRET: env.jwtSecret,
    MESSAGE_RATE_LIMIT_PER_MINUTE: '1000000000',
    MEMBERSHIP_RATE_LIMIT_PER_MINUTE: '1000000000',
    HTTP_RATE_LIMIT_PER_MINUTE: '0',
    AUTH_DEV_LOGIN: 'false',
    LOG_LEVEL: 'warn',
    DRAIN_WINDOW_MS: '0',
    NODE_ENV: 'production',
  });
  const url = `http://127.0.0.1:${port}`;
  // tsx compiles the app at start: seconds alone, far more on a machine shared with other work.
  await waitHttpOk(proc, `${url}/readyz`, 180_000);
  return { name, proc, url };
}
