import { z } from 'zod';
import type { RedisEndpoint, RedisTls } from './redis-endpoint.ts';

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
  | { kind: 'cluster'; nodes: readonly BusNode[]; username?: string; password?: string; tls?: RedisTls };

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

/**
 * The cluster of `clusterNodes` when there are any, else the one Redis of `redis`. A cluster
 * takes REDIS_URL's credentials and TLS settings: one deployment's Redis servers share them.
 */
export function redisTarget(redis: RedisEndpoint, clusterNodes: readonly BusNode[] | null | undefined): RedisTarget {
  if (!clusterNodes || clusterNodes.length === 0) return { kind: 'standalone', ...redis };
  return { kind: 'cluster', nodes: clusterNodes, ...redisCredentials(redis.url), ...(redis.tls ? { tls: redis.tls } : {}) };
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
