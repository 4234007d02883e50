import { z } from 'zod';
import { readPemFile, withPemFiles } from '@chat/runtime';
import { hostPortListSchema, redisTarget, stateKeyPrefix, type BusTarget, type RedisTarget } from './bus-config.ts';
import type { RedisEndpoint, RedisTls } from './redis-endpoint.ts';

/**
 * The Redis variables the gateway and the worker both read, how they are checked together and
 * what they become: one definition, spread into each app's env schema, so that the two cannot
 * disagree about where the bus and the state are or how to reach them.
 */

/** An optional variable where blank means unset (a ConfigMap's `""`). */
const blankAsUnset = (schema: z.ZodString) =>
  z
    .string()
    .optional()
    .transform((value) => (value === undefined || value.trim() === '' ? undefined : value))
    .pipe(schema.optional());

/**
 * The path of a PEM file named by a variable, checked at start (`readPemFile`: errors name the
 * path only); connections read it again (`withPemFiles`).
 */
const pemFile = blankAsUnset(z.string()).transform((path, context): string | undefined => {
  if (path === undefined) return undefined;
  try {
    readPemFile(path);
    return path;
  } catch (error) {
    context.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

/**
 * Which Socket.IO adapter the bus runs: `sharded` (the product: SPUBLISH/SSUBSCRIBE, a pod hears
 * a room only while it holds a member) or `classic` (PUBLISH/PSUBSCRIBE, every pod hears
 * every room; standalone bus only), kept to measure one against the other (`pnpm bench:scale`).
 * Gateways and the worker must agree.
 */
export const BUS_ADAPTERS = ['sharded', 'classic'] as const;
export type BusAdapterKind = (typeof BUS_ADAPTERS)[number];

export const redisEnvShape = {
  /** The state Redis (and the bus, unless it is a cluster); `rediss:` for TLS to every Redis. */
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  /** Sentinels (`host:port,…`) to ask for the state Redis's master; unset: REDIS_URL is the address. */
  REDIS_SENTINELS: hostPortListSchema,
  /** The master's name in the sentinels' configuration (`sentinel monitor <name> …`). */
  REDIS_SENTINEL_NAME: blankAsUnset(z.string().regex(/^[A-Za-z0-9._-]+$/)),
  REDIS_SENTINEL_PASSWORD: blankAsUnset(z.string()),
  /** A Redis Cluster for the Socket.IO bus (`host:port,…`); unset, the bus is REDIS_URL. */
  REDIS_BUS_CLUSTER_NODES: hostPortListSchema,
  /** A Redis Cluster for the state (`host:port,…`): rate limits, presence, BullMQ; unset, REDIS_URL. */
  REDIS_STATE_CLUSTER_NODES: hostPortListSchema,
  /** `classic` only to measure against (benchmarks); gateways and worker must agree. */
  BUS_ADAPTER: z.enum(BUS_ADAPTERS).default('sharded'),
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9:_-]+$/).default('chat'),
  /** With `rediss:`: the CA certificates (PEM) to trust instead of Node's public ones. */
  REDIS_TLS_CA_FILE: pemFile,
  /** With `rediss:`: this client's certificate and key (PEM), for servers that ask for one (`tls-auth-clients`). */
  REDIS_TLS_CERT_FILE: pemFile,
  REDIS_TLS_KEY_FILE: pemFile,
};

type RedisEnv = z.output<z.ZodObject<typeof redisEnvShape>>;

/** The checks across the Redis variables; each app's schema runs them (`.superRefine`). */
export function checkRedisEnv(env: RedisEnv, context: z.RefinementCtx): void {
  const problem = (path: keyof RedisEnv, message: string) => context.addIssue({ code: 'custom', path: [path], message });
  if (env.BUS_ADAPTER === 'classic' && env.REDIS_BUS_CLUSTER_NODES !== null) {
    problem('BUS_ADAPTER', 'BUS_ADAPTER=classic runs on REDIS_URL only; unset REDIS_BUS_CLUSTER_NODES');
  }
  if (env.REDIS_SENTINELS !== null && !env.REDIS_SENTINEL_NAME) {
    problem('REDIS_SENTINELS', 'REDIS_SENTINELS needs REDIS_SENTINEL_NAME');
  }
  if (env.REDIS_SENTINELS !== null && env.REDIS_STATE_CLUSTER_NODES !== null) {
    problem('REDIS_STATE_CLUSTER_NODES', 'REDIS_STATE_CLUSTER_NODES and REDIS_SENTINELS exclude each other: a Redis Cluster fails over by itself');
  }
  const tls = env.REDIS_URL.startsWith('rediss:');
  for (const name of ['REDIS_TLS_CA_FILE', 'REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE'] as const) {
    if (env[name] !== undefined && !tls) problem(name, `${name} is for TLS: REDIS_URL must be rediss:`);
  }
  if ((env.REDIS_TLS_CERT_FILE === undefined) !== (env.REDIS_TLS_KEY_FILE === undefined)) {
    problem('REDIS_TLS_CERT_FILE', 'REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together');
  }
}

/** The Redis variables alone, checked (`pnpm start`'s own look at Redis before it starts the apps). */
export const redisEnvSchema = z.object(redisEnvShape).superRefine(checkRedisEnv);

/** Where each app's Redis traffic goes, as its config holds it. */
export interface RedisSettings {
  /** The state Redis: REDIS_URL, the master of a Sentinel group, or a Redis Cluster. */
  state: RedisTarget;
  /** Where the Socket.IO adapter's traffic goes: a Redis Cluster, or the Redis at REDIS_URL. */
  bus: BusTarget;
  /** The Socket.IO adapter on the bus: `sharded`, or `classic` (benchmarks only). */
  busAdapter: BusAdapterKind;
  redisPrefix: string;
  /** The prefix of the state keys used together (presence, socket places, BullMQ): `stateKeyPrefix`. */
  stateKeyPrefix: string;
}

/** The settings the env names (after `checkRedisEnv` held). */
export function redisSettingsOf(env: RedisEnv): RedisSettings {
  const endpoint: RedisEndpoint = Object.freeze({
    url: env.REDIS_URL,
    ...(env.REDIS_SENTINELS && env.REDIS_SENTINEL_NAME
      ? { sentinel: { nodes: env.REDIS_SENTINELS, name: env.REDIS_SENTINEL_NAME, password: env.REDIS_SENTINEL_PASSWORD ?? null } }
      : {}),
    ...(env.REDIS_URL.startsWith('rediss:') ? { tls: tlsOf(env) } : {}),
  });
  const state = Object.freeze(redisTarget(endpoint, env.REDIS_STATE_CLUSTER_NODES));
  return {
    state,
    bus: Object.freeze(redisTarget(endpoint, env.REDIS_BUS_CLUSTER_NODES)),
    busAdapter: env.BUS_ADAPTER,
    redisPrefix: env.REDIS_PREFIX,
    stateKeyPrefix: stateKeyPrefix(env.REDIS_PREFIX, state),
  };
}

function tlsOf(env: RedisEnv): RedisTls {
  return withPemFiles({}, { ca: env.REDIS_TLS_CA_FILE, cert: env.REDIS_TLS_CERT_FILE, key: env.REDIS_TLS_KEY_FILE });
}

