import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { BusNode, RedisTarget } from './bus-config.ts';

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
 * TLS to Redis (a `rediss:` REDIS_URL), PEM texts: whom to trust and, for servers that ask
 * (`tls-auth-clients`), who this client is. The server's name or address is always verified.
 */
export interface RedisTls {
  /** The CA certificates to trust instead of Node's public ones; absent: the public ones. */
  ca?: string;
  cert?: string;
  key?: string;
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
  /** Present (a `rediss:` URL): every connection is TLS, the sentinels' too. */
  tls?: RedisTls;
}

/** A connection to the endpoint with `options` (timeouts, retries, pipelining). */
export function connectRedis(endpoint: RedisEndpoint, options: RedisOptions = {}): Redis {
  const { sentinel, tls } = endpoint;
  // `tls` itself, never a copy: its PEM fields read their files at each connection (withPemFiles),
  // and ioredis copies them into each connection's options.
  if (!sentinel) return new Redis(endpoint.url, { ...options, ...(tls ? { tls } : {}) });
  const url = new URL(endpoint.url);
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  return new Redis({
    ...options,
    ...(tls ? { tls, enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
    sentinels: sentinel.nodes.map((node) => ({ host: node.host, port: node.port })),
    name: sentinel.name,
    ...(sentinel.password ? { sentinelPassword: sentinel.password } : {}),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    db,
  });
}

/**
 * A client of the cluster `target` with `options`; the target's credentials and TLS settings
 * (REDIS_URL's) go to every node's connection.
 */
export function connectCluster(target: Extract<RedisTarget, { kind: 'cluster' }>, options: ClusterOptions = {}): Cluster {
  const { tls } = target;
  return new Cluster(
    target.nodes.map((node) => ({ ...node })),
    {
      ...options,
      // ioredis resolves a node's name to an address before it connects; with TLS the name must
      // reach tls.connect instead, for the certificate is checked against it (a managed
      // cluster's endpoints are names).
      ...(tls ? { dnsLookup: (address: string, callback: (error: null, address: string) => void) => callback(null, address) } : {}),
      redisOptions: {
        ...options.redisOptions,
        ...(target.username ? { username: target.username } : {}),
        ...(target.password ? { password: target.password } : {}),
        ...(tls ? { tls } : {}),
      },
    },
  );
}
