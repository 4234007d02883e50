import type { Cluster, Redis } from 'ioredis';
import type { RedisTarget } from './bus-config.ts';
import { connectCluster, connectRedis } from './redis-endpoint.ts';

/** A state connection: one Redis, or a Redis Cluster client that sends each key to its master. */
export type StateClient = Redis | Cluster;

export interface StateClientOptions {
  /** Reconnection delay after `attempt` failures (one Redis) or cluster reconnects. */
  retryStrategy?: (attempt: number) => number | null;
  connectTimeout?: number;
  /** ioredis's per-command retry bound across reconnections; null: unbounded (BullMQ workers). */
  maxRetriesPerRequest?: number | null;
  commandTimeout?: number;
  /**
   * A connection with a command out that hears nothing from Redis this long is taken for dead,
   * destroyed and made again (ioredis `socketTimeout`): a silent Redis keeps it open otherwise.
   * Longer than the longest blocking read sent on it.
   */
  socketTimeout?: number;
  /**
   * False: a command out when its connection was lost is not sent again on the next one (ioredis
   * `autoResendUnfulfilledCommands`, default true). For commands with a `commandTimeout`, whose
   * callers were told they failed.
   */
  autoResendUnfulfilledCommands?: boolean;
  enableOfflineQueue?: boolean;
  enableAutoPipelining?: boolean;
}

/**
 * A connection to the state Redis with `options`, whichever form it has. On a cluster the
 * options that bound one command apply to each node's connection, and scripts, MULTIs and
 * pipelines go to the master of their keys' slot (their keys share one: `stateKeyPrefix`).
 */
export function connectState(target: RedisTarget, options: StateClientOptions = {}): StateClient {
  const { retryStrategy, enableOfflineQueue, enableAutoPipelining, ...perCommand } = options;
  if (target.kind === 'standalone') return connectRedis(target, options);
  return connectCluster(target, {
    clusterRetryStrategy: retryStrategy,
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
    redisOptions: perCommand,
  });
}
