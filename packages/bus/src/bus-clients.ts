import { Cluster, Redis } from 'ioredis';
import type { BusTarget } from './bus-config.ts';

/** A bus connection: one Redis, or a Redis Cluster client that routes each channel to its shard. */
export type BusClient = Redis | Cluster;

export interface BusClientOptions {
  /** Reconnection delay after `attempt` failures (standalone) or cluster reconnects. */
  retryStrategy?: (attempt: number) => number | null;
  connectTimeout?: number;
  /** ioredis's per-command retry bound across reconnections (default: ioredis's 20). */
  maxRetriesPerRequest?: number | null;
}

/**
 * A publisher for SPUBLISH: auto-pipelined, so the broadcasts of one event-loop turn share a
 * write. On a cluster each SPUBLISH goes to the master of its channel's slot.
 */
export function createBusPublisher(target: BusTarget, options: BusClientOptions = {}): BusClient {
  if (target.kind === 'standalone') {
    return new Redis(target.url, { ...redisOptions(options), enableAutoPipelining: true });
  }
  return new Cluster(target.nodes.map((node) => ({ ...node })), {
    enableAutoPipelining: true,
    clusterRetryStrategy: options.retryStrategy ?? undefined,
    redisOptions: redisOptions(options),
  });
}

/**
 * A subscriber for SSUBSCRIBE. No auto-pipelining: ioredis defers pipelined commands a tick, and
 * its exclusion list misspells PUNSUBSCRIBE. On a cluster, `shardedSubscribers` gives one
 * subscriber connection per master, SSUBSCRIBEs routed by slot and re-made after MOVED or a
 * node's restart (ioredis ≥ 5.9).
 */
export function createBusSubscriber(target: BusTarget, options: BusClientOptions = {}): BusClient {
  if (target.kind === 'standalone') {
    return new Redis(target.url, { ...redisOptions(options), enableAutoPipelining: false });
  }
  return new Cluster(target.nodes.map((node) => ({ ...node })), {
    shardedSubscribers: true,
    clusterRetryStrategy: options.retryStrategy ?? undefined,
    redisOptions: redisOptions(options),
  });
}

function redisOptions(options: BusClientOptions) {
  return {
    connectTimeout: options.connectTimeout ?? 2000,
    ...(options.retryStrategy ? { retryStrategy: options.retryStrategy } : {}),
    ...(options.maxRetriesPerRequest !== undefined ? { maxRetriesPerRequest: options.maxRetriesPerRequest } : {}),
  };
}

export function isClusterClient(client: BusClient): client is Cluster {
  return client instanceof Cluster;
}

/** Resolves true once the client (bus or state Redis) is ready, false after `timeoutMs`: a Redis that is down must not block boot. */
export function busReady(client: BusClient, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once('ready', onReady);
  });
}
