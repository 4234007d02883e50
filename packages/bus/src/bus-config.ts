import { z } from 'zod';
import type { RedisEndpoint } from './redis-endpoint.ts';

/**
 * Where the Socket.IO adapter's traffic (the bus) goes, apart from the state Redis (rate
 * limits, presence, BullMQ, caches): a Redis Cluster when REDIS_BUS_CLUSTER_NODES is set, else
 * the state Redis's REDIS_URL, as before. The state itself is REDIS_URL's Redis, or a Redis
 * Cluster when REDIS_STATE_CLUSTER_NODES is set. Shared by the gateway and the worker, which
 * must agree.
 */
export interface BusNode {
  host: string;
  port: number;
}

export type RedisTarget =
  /** One Redis: REDIS_URL's, or (`sentinel`) the master its Sentinel group names. */
  | ({ kind: 'standalone' } & RedisEndpoint)
  /** A Redis Cluster; REDIS_URL's username and password, if any, are its nodes' (AUTH). */
  | { kind: 'cluster'; nodes: readonly BusNode[]; username?: string; password?: string };

/** Where the bus is. */
export type BusTarget = RedisTarget;

/**
 * `host:port,host:port,…` → nodes (any of a cluster's nodes will do: the client learns the rest
 * from it). Throws one message naming the first bad entry.
 */
export function parseBusClusterNodes(value: string): BusNode[] {
  const entries = value.split(',').map((entry) => entry.trim()).filter(Boolean);
  if (entries.length === 0) throw new Error('expected host:port[,host:port…]');
  return entries.map((entry) => {
    const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
    const port = match ? Number(match[2]) : NaN;
    if (!match || port < 1 || port > 65_535) throw new Error(`"${entry}" is not host:port`);
    return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
  });
}

/** The cluster of `clusterNodes` when there are any, else the one Redis of `redis`. */
export function redisTarget(redis: RedisEndpoint, clusterNodes: readonly BusNode[] | null | undefined): RedisTarget {
  if (!clusterNodes || clusterNodes.length === 0) return { kind: 'standalone', ...redis };
  return { kind: 'cluster', nodes: clusterNodes, ...redisCredentials(redis.url) };
}

/** The username and password a Redis URL carries, decoded; absent ones left out. */
export function redisCredentials(redisUrl: string): { username?: string; password?: string } {
  const url = new URL(redisUrl);
  return {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
}


/**
 * The prefix of the state keys that one script or transaction touches together: presence,
 * socket places, the occupancy queue, BullMQ's queues. A Redis Cluster runs a script or MULTI
 * only on keys of one slot, so there they share the hash tag `{<prefix>}` and live on one master
 * (the rate limits' keys, one per script, keep the plain prefix and spread over the masters);
 * on one Redis the names stay what they always were.
 */
export function stateKeyPrefix(redisPrefix: string, state: RedisTarget): string {
  return state.kind === 'cluster' ? `{${redisPrefix}}` : redisPrefix;
}

/** The adapter's channel prefix: its channels are `<prefix>#<nsp>#` and `<prefix>#<nsp>#<room>#`. */
export function busChannelPrefix(redisPrefix: string): string {
  return `${redisPrefix}:socket.io`;
}

/** Channel names exactly as @socket.io/redis-adapter 8.3.0's sharded adapter builds them. */
export function mainChannel(channelPrefix: string, nsp: string): string {
  return `${channelPrefix}#${nsp}#`;
}

export function roomBusChannel(channelPrefix: string, nsp: string, room: string): string {
  return `${mainChannel(channelPrefix, nsp)}${room}#`;
}

/** The room a room channel is for, or null for the main, response and foreign channels. */
export function roomOfBusChannel(channelPrefix: string, nsp: string, channel: string): string | null {
  const main = mainChannel(channelPrefix, nsp);
  if (!channel.startsWith(main) || !channel.endsWith('#') || channel.length <= main.length + 1) return null;
  return channel.slice(main.length, -1);
}

/**
 * A `host:port,…` variable for a zod env schema: unset or blank → null, else the nodes, or one
 * issue naming the bad entry.
 */
export const hostPortListSchema = z
  .string()
  .optional()
  .transform((value, context): BusNode[] | null => {
    if (value === undefined || value.trim() === '') return null;
    try {
      return parseBusClusterNodes(value);
    } catch (error) {
      context.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  });

/** REDIS_BUS_CLUSTER_NODES: unset or blank → null (the bus is REDIS_URL). */
export const busClusterNodesSchema = hostPortListSchema;

/**
 * Which Socket.IO adapter the bus runs: `sharded` (the product: SPUBLISH/SSUBSCRIBE, a pod hears
 * a room only while it holds a member) or `classic` (PUBLISH/PSUBSCRIBE, every pod hears
 * every room; standalone bus only), kept to measure one against the other (`pnpm bench:scale`).
 * Gateways and the worker must agree.
 */
export const BUS_ADAPTERS = ['sharded', 'classic'] as const;
export type BusAdapterKind = (typeof BUS_ADAPTERS)[number];
export const busAdapterSchema = z.enum(BUS_ADAPTERS).default('sharded');

/** REDIS_STATE_CLUSTER_NODES: unset or blank → null (the state is REDIS_URL). */
export const stateClusterNodesSchema = hostPortListSchema;

/** The refinement both apps apply: the state is found either through Sentinel or as a cluster. */
export const stateClusterExcludesSentinel = {
  check: (env: { REDIS_SENTINELS: readonly BusNode[] | null; REDIS_STATE_CLUSTER_NODES: readonly BusNode[] | null }) =>
    env.REDIS_SENTINELS === null || env.REDIS_STATE_CLUSTER_NODES === null,
  message: 'REDIS_STATE_CLUSTER_NODES and REDIS_SENTINELS exclude each other: a Redis Cluster fails over by itself',
} as const;

/** The zod refinement both apps apply: the classic adapter has no Redis Cluster support here. */
export const classicNeedsStandaloneBus = {
  check: (env: { BUS_ADAPTER: BusAdapterKind; REDIS_BUS_CLUSTER_NODES: readonly BusNode[] | null }) =>
    env.BUS_ADAPTER !== 'classic' || env.REDIS_BUS_CLUSTER_NODES === null,
  message: 'BUS_ADAPTER=classic runs on REDIS_URL only; unset REDIS_BUS_CLUSTER_NODES',
} as const;
