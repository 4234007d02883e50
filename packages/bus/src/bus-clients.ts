import type { Socket } from 'node:net';
import { Cluster, type Redis } from 'ioredis';
import type { BusTarget } from './bus-config.ts';
import { connectCluster, connectRedis } from './redis-endpoint.ts';

/** A bus connection: one Redis, or a Redis Cluster client that routes each channel to its shard. */
export type BusClient = Redis | Cluster;

export interface BusClientOptions {
  /** Reconnection delay after `attempt` failures (standalone) or cluster reconnects. */
  retryStrategy?: (attempt: number) => number | null;
  connectTimeout?: number;
  /** ioredis's per-command retry bound across reconnections (default: ioredis's 20). */
  maxRetriesPerRequest?: number | null;
  /** A command unanswered this long is rejected (ioredis `commandTimeout`); default: never. */
  commandTimeout?: number;
  /**
   * A connection with a command out that hears nothing from Redis this long is destroyed and
   * made again (ioredis `socketTimeout`); default: never. A silent Redis (a partition, a pod
   * replaced behind its Service: no reset) keeps it open otherwise.
   */
  socketTimeout?: number;
  /**
   * False: a command is sent at once or fails, and one in flight when the connection drops fails
   * instead of being sent again on the next (ioredis `enableOfflineQueue` and
   * `autoResendUnfulfilledCommands` of a standalone client; a cluster's node connections always
   * queue until they connect). Default true, ioredis's.
   */
  sendLater?: boolean;
}

/**
 * A publisher for SPUBLISH whose broadcasts of one event-loop turn share a write. On one Redis
 * by corking its socket for the rest of the turn (`corkedPerTurn`); on a cluster by ioredis's
 * auto-pipelining, which also sends each SPUBLISH to the master of its channel's slot.
 */
export function createBusPublisher(target: BusTarget, options: BusClientOptions = {}): BusClient {
  if (target.kind === 'standalone') {
    return corkedPerTurn(connectRedis(target, { ...redisOptions(options), enableAutoPipelining: false }));
  }
  return connectCluster(target, {
    enableAutoPipelining: true,
    // A master demoted by a manual failover (CLUSTER FAILOVER, how a cluster is upgraded) still
    // accepts its old slots' SPUBLISH, as a replica, without the MOVED that would correct the
    // client, and only the cluster bus relays it to the subscribers on the new master: under
    // load some of those relays were lost (a room's `room-expired`, published 7 s after its
    // shard failed over, never arrived). The slot map read every few seconds sends them to
    // the master again.
    slotsRefreshInterval: SLOTS_REFRESH_MS,
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
    return connectRedis(target, { ...redisOptions(options), enableAutoPipelining: false });
  }
  return connectCluster(target, {
    shardedSubscribers: true,
    // A slot moved to another master (a reshard, a master added) takes the pods' subscriptions
    // to its channels with it: the old master sends SUNSUBSCRIBE, which ioredis drops, and a
    // subscriber sends no command that could come back MOVED. Only a look at the slots finds the
    // new owner; then ioredis re-subscribes there and subscription-tracker.ts resyncs the rooms.
    slotsRefreshInterval: SLOTS_REFRESH_MS,
    clusterRetryStrategy: options.retryStrategy ?? undefined,
    redisOptions: redisOptions(options),
  });
}

/** How often a bus client on a cluster reads the slot map (one CLUSTER SLOTS per client). */
const SLOTS_REFRESH_MS = 2000;

/**
 * The publishes of one event-loop turn leave in one write: the first corks the connection's
 * socket, and it is uncorked once the turn's code is done (process.nextTick), so Node writes
 * everything buffered in between with one writev. ioredis's auto-pipelining does the same with
 * a Pipeline object per turn and a deferred send per command, which cost a publish about twice
 * the CPU of a plain one when a turn holds a single broadcast, most turns at everyday load
 * (test/bench/bus-publish.ts, loaded host: 17–28 against 10–16 µs per publish at one a turn,
 * 6.5–7.3 against 4.5–4.9 µs at twenty).
 */
function corkedPerTurn(client: Redis): Redis {
  let corked: Socket | null = null;
  const uncork = () => {
    corked?.uncork();
    corked = null;
  };
  for (const command of ['spublish', 'publish'] as const) {
    const send = client[command].bind(client) as (channel: string, message: string | Buffer) => Promise<number>;
    (client as Record<typeof command, unknown>)[command] = (channel: string, message: string | Buffer) => {
      // Only a connected socket: before that ioredis queues the command and writes it on connect.
      const stream = (client as unknown as { stream?: Socket }).stream;
      if (corked === null && client.status === 'ready' && stream) {
        corked = stream;
        stream.cork();
        process.nextTick(uncork);
      }
      return send(channel, message);
    };
  }
  return client;
}

function redisOptions(options: BusClientOptions) {
  return {
    connectTimeout: options.connectTimeout ?? 2000,
    ...(options.retryStrategy ? { retryStrategy: options.retryStrategy } : {}),
    ...(options.maxRetriesPerRequest !== undefined ? { maxRetriesPerRequest: options.maxRetriesPerRequest } : {}),
    ...(options.commandTimeout !== undefined ? { commandTimeout: options.commandTimeout } : {}),
    ...(options.socketTimeout !== undefined ? { socketTimeout: options.socketTimeout } : {}),
    ...(options.sendLater === false ? { enableOfflineQueue: false, autoResendUnfulfilledCommands: false } : {}),
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
