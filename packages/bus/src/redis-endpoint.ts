import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { z } from 'zod';
import { hostPortListSchema, type BusNode, type RedisTarget } from './bus-config.ts';

/**
 * A Redis Sentinel group (REDIS_SENTINELS, REDIS_SENTINEL_NAME): the sentinels to ask, any of
 * which will do, and the name of the master they watch. A client asks them where the master is
 * at each (re)connect, so a failover that promotes a replica moves every connection to it.
 */
export interface SentinelGroup {
  nodes: readonly BusNode[];
  name: string;
  /** The sentinels' own password (REDIS_SENTINEL_PASSWORD), if they require one. */
  password: string | null;
}

/**
 * One Redis for the state (and the bus, unless it is a cluster): the address in REDIS_URL, or,
 * with `sentinel`, whichever server its sentinels name as the master; REDIS_URL's username,
 * password and database number then apply to that master.
 */
export interface RedisEndpoint {
  url: string;
  /** Absent: REDIS_URL is the address. */
  sentinel?: SentinelGroup;
}

/** A connection to the endpoint with `options` (timeouts, retries, pipelining). */
export function connectRedis(endpoint: RedisEndpoint, options: RedisOptions = {}): Redis {
  const { sentinel } = endpoint;
  if (!sentinel) return new Redis(endpoint.url, options);
  const url = new URL(endpoint.url);
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  return new Redis({
    ...options,
    sentinels: sentinel.nodes.map((node) => ({ host: node.host, port: node.port })),
    name: sentinel.name,
    ...(sentinel.password ? { sentinelPassword: sentinel.password } : {}),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    db,
  });
}

/**
 * A client of the cluster `target` with `options`; the target's credentials (REDIS_URL's) go
 * to every node's connection.
 */
export function connectCluster(target: Extract<RedisTarget, { kind: 'cluster' }>, options: ClusterOptions = {}): Cluster {
  return new Cluster(
    target.nodes.map((node) => ({ ...node })),
    {
      ...options,
      redisOptions: {
        ...options.redisOptions,
        ...(target.username ? { username: target.username } : {}),
        ...(target.password ? { password: target.password } : {}),
      },
    },
  );
}

/** An optional variable where blank means unset (a ConfigMap's `""`). */
const blankAsUnset = (schema: z.ZodString) =>
  z
    .string()
    .optional()
    .transform((value) => (value === undefined || value.trim() === '' ? undefined : value))
    .pipe(schema.optional());

/** The variables both apps read to find their Redis through Sentinel; spread into an env schema. */
export const sentinelEnvShape = {
  /** Sentinels (`host:port,…`) to ask for the state Redis's master; unset: REDIS_URL is the address. */
  REDIS_SENTINELS: hostPortListSchema,
  /** The master's name in the sentinels' configuration (`sentinel monitor <name> …`). */
  REDIS_SENTINEL_NAME: blankAsUnset(z.string().regex(/^[A-Za-z0-9._-]+$/)),
  REDIS_SENTINEL_PASSWORD: blankAsUnset(z.string()),
};

type SentinelEnv = {
  REDIS_URL: string;
  REDIS_SENTINELS: readonly BusNode[] | null;
  REDIS_SENTINEL_NAME?: string | undefined;
  REDIS_SENTINEL_PASSWORD?: string | undefined;
};

/**
 * The refinement both apps apply: Sentinel needs the master's name, and TLS through Sentinel
 * (a `rediss:` URL) is not built (ioredis would need separate TLS settings for the sentinels).
 */
export const sentinelSettingsValid = {
  check: (env: SentinelEnv) => env.REDIS_SENTINELS === null || (Boolean(env.REDIS_SENTINEL_NAME) && !env.REDIS_URL.startsWith('rediss:')),
  message: 'REDIS_SENTINELS needs REDIS_SENTINEL_NAME, and a redis: (not rediss:) REDIS_URL for the credentials',
} as const;

/** The endpoint the env names (after `sentinelSettingsValid` held). */
export function redisEndpointOf(env: SentinelEnv): RedisEndpoint {
  if (!env.REDIS_SENTINELS || !env.REDIS_SENTINEL_NAME) return { url: env.REDIS_URL };
  return {
    url: env.REDIS_URL,
    sentinel: { nodes: env.REDIS_SENTINELS, name: env.REDIS_SENTINEL_NAME, password: env.REDIS_SENTINEL_PASSWORD ?? null },
  };
}
