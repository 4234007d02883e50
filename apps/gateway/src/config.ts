import { z } from 'zod';
import { checkRedisEnv, redisEnvShape, redisSettingsOf, type RedisSettings } from '@chat/bus';
import { databaseUrlSchema } from '@chat/db';
import { envDefaultsOf, isPlaceholderSecret, parseEnv } from '@chat/runtime';
import { parseFaultCrashAfterCommit, type FaultCrashAfterCommit } from './lib/fault-hooks.ts';

/**
 * The only reader of process.env for the gateway. Parsed once at start into a frozen object;
 * an invalid value stops the process with one line per problem.
 */
const csv = z
  .string()
  .transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean));

/**
 * Which peers' X-Forwarded-For to believe, as Fastify's `trustProxy` takes it: `true`, `false`,
 * a hop count, or addresses / CIDRs / proxy-addr names. The default trusts private networks (a
 * Kubernetes ingress, a compose nginx), so the client's address is the right-most one in the
 * header that a private proxy added: `true` would take the left-most, which the client writes.
 */
const trustProxy = z.string().transform((value): boolean | number | string[] => {
  const trimmed = value.trim();
  if (trimmed === 'true' || trimmed === 'false') return trimmed === 'true';
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  return trimmed.split(',').map((item) => item.trim()).filter(Boolean);
});

/**
 * Server API keys (PROTOCOL §17): `id:sha256hex,…`. Only the SHA-256 of each key is configured,
 * so the environment never holds a usable key; the id names the key in logs.
 */
const serverApiKeys = z.string().transform((value, context) => {
  const keys: { id: string; sha256: string }[] = [];
  for (const item of value.split(',').map((part) => part.trim()).filter(Boolean)) {
    const match = /^([A-Za-z0-9_-]{1,64}):([0-9a-fA-F]{64})$/.exec(item);
    if (!match) {
      // Never echo the item: it may be a raw key pasted by mistake.
      context.addIssue({ code: 'custom', message: 'each entry must be <id>:<sha256 hex of the key>' });
      return z.NEVER;
    }
    keys.push({ id: match[1]!, sha256: match[2]!.toLowerCase() });
  }
  return keys;
});

/**
 * The signing keys decide who may connect: fetched over https only, so nobody on the path can
 * hand the pod keys of their own. Plain http is for a local identity provider in development.
 */
function isAllowedJwksUrl(value: string, development: boolean): boolean {
  const { protocol } = new URL(value);
  return protocol === 'https:' || (development && protocol === 'http:');
}

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const envSchema = z
  .object({
    PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
    HOST: z.string().min(1).default('0.0.0.0'),
    POD_NAME: z.string().min(1).optional(),
    DATABASE_URL: databaseUrlSchema,
    DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
    DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(100).default(5000),
    /**
     * A call on the general pool (one statement or transaction: REST, joins and leaves, the
     * handshake's session read, the server API, /readyz) not settled by then answers UNAVAILABLE,
     * and if Postgres answered nothing it waited behind meanwhile the pool is replaced
     * (packages/db/src/stall-guarded-database.ts): Postgres gone without a reset never sends its
     * statement timeout; a call that only waited behind a busy pool replaces nothing. Unset: the
     * group commit's batch deadline, 2 × DATABASE_STATEMENT_TIMEOUT_MS + 5 s (15 s by default),
     * well past what Postgres itself allows a call plus its wait for a pool connection under load.
     */
    DATABASE_STALL_TIMEOUT_MS: z.coerce.number().int().min(1000).optional(),
    ...redisEnvShape,
    // HS256 wants a key as long as its hash (RFC 7518 §3.2): 32 bytes of UTF-8.
    JWT_SECRET: z
      .string()
      .refine((secret) => Buffer.byteLength(secret, 'utf8') >= 32, 'JWT_SECRET must be at least 32 bytes')
      .refine((secret) => !isPlaceholderSecret(secret), "JWT_SECRET is the example's CHANGE-ME placeholder: set a random one (openssl rand -base64 48)")
      .optional(),
    JWT_JWKS_URL: z.string().url().optional(),
    /** Tokens living longer than this (exp − iat, and exp − now) are refused; 0: no bound. */
    JWT_MAX_LIFETIME_SECONDS: z.coerce.number().int().min(0).default(0),
    /** `development` allows an http: JWT_JWKS_URL (a local identity provider); nothing else reads it. */
    NODE_ENV: z.string().optional(),
    JWT_ISSUER: z.string().min(1).optional(),
    JWT_AUDIENCE: z.string().min(1).optional(),
    CORS_ORIGINS: csv.default([]),
    ROOM_TTL_SECONDS: z.coerce.number().int().min(1).max(30 * 86_400).default(86_400),
    MESSAGE_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(30),
    /** How long a pod may hold send units it leased ahead for a user before giving them back; 0: one unit per send. */
    MESSAGE_RATE_LEASE_MS: z.coerce.number().int().min(0).max(10_000).default(3000),
    EARLY_LOCK_RELEASE_MESSAGES_PER_SECOND: z.coerce.number().int().min(0).max(1_000_000).default(100),
    EARLY_LOCK_RELEASE_BATCH_SIZE: z.coerce.number().int().min(0).max(10_000).default(8),
    /** How long a small group-commit batch may wait for company at a busy pod (message-writer.ts); 0: never. */
    GROUP_COMMIT_LINGER_MS: z.coerce.number().min(0).max(50).default(2),
    /** join-room / leave-room that would change a membership, per minute per user, shared by all pods. */
    MEMBERSHIP_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(60),
    /**
     * Live rooms one user may belong to: a join past it is refused (TOO_MANY_ROOMS). Every
     * handshake puts the socket into all of them, and presence and occupancy go to all of them.
     */
    MAX_ROOMS_PER_USER: z.coerce.number().int().min(1).max(100_000).default(500),
    /** Socket events refused after a database lookup (no such room, not a member) per minute per user, all pods. */
    FAILED_EVENT_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(60),
    /** POST /api/rooms per minute per user, shared by all pods. */
    ROOM_CREATE_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(10),
    /** Requests to /api/* per minute per user (per IPv4 address or IPv6 /64 for guests and invalid tokens), shared by all pods; 0: off. */
    HTTP_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).default(600),
    /** Sockets one user may hold across the cluster; past it the handshake is refused; 0: no bound. */
    MAX_SOCKETS_PER_USER: z.coerce.number().int().min(0).default(32),
    /** Socket handshakes per minute per user, all pods (each costs a database lookup and, online, a presence announcement per room); 0: off. */
    HANDSHAKE_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).default(120),
    /** How long a socket's place under MAX_SOCKETS_PER_USER outlives a pod that died holding it. */
    SOCKET_LEASE_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000),
    /** Unread bytes a socket may hold on the pod before it is dropped as a slow consumer. */
    SOCKET_MAX_QUEUED_BYTES: z.coerce.number().int().min(16 * 1024).default(1024 * 1024),
    TRUST_PROXY: trustProxy.default(['loopback', 'linklocal', 'uniquelocal']),
    AUTH_DEV_LOGIN: booleanFlag.default(false),
    DRAIN_WINDOW_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
    SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(1000).default(30_000),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** How long a room's occupancy must hold before room-occupied / room-vacated is recorded (a reconnect does not flap). */
    ROOM_OCCUPANCY_GRACE_MS: z.coerce.number().int().min(0).default(5000),
    /** Server API keys, `id:sha256hex,…` (PROTOCOL §17); empty: the server API refuses every call. */
    SERVER_API_KEYS: serverApiKeys.default([]),
    /** Ids of keys that are revoked: refused with API_KEY_REVOKED. */
    SERVER_API_KEYS_REVOKED: csv.default([]),
    /** Server API calls per minute per key, shared by all pods (its own budget, not HTTP_RATE_LIMIT_PER_MINUTE). */
    SERVER_API_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(6000),
    /** Tests of the subscription barrier only: hold each bus SSUBSCRIBE this long. */
    FAULT_BUS_SUBSCRIBE_DELAY_MS: z.coerce.number().int().min(0).max(60_000).default(0),
    /** Fault suite only (test/faults): crash after the Nth (or a fraction of) committed sends. */
    FAULT_CRASH_AFTER_COMMIT: z
      .string()
      .optional()
      .refine((value) => {
        try {
          parseFaultCrashAfterCommit(value);
          return true;
        } catch {
          return false;
        }
      }, 'an integer N ≥ 1 (crash at the Nth committed message) or a probability 0 < p < 1'),
  })
  .refine((env) => Boolean(env.JWT_SECRET) !== Boolean(env.JWT_JWKS_URL), {
    message: 'set exactly one of JWT_SECRET and JWT_JWKS_URL',
    path: ['JWT_SECRET'],
  })
  .refine((env) => !env.JWT_JWKS_URL || isAllowedJwksUrl(env.JWT_JWKS_URL, env.NODE_ENV === 'development'), {
    message: 'JWT_JWKS_URL must be https: (http: only with NODE_ENV=development)',
    path: ['JWT_JWKS_URL'],
  })
  .refine((env) => !env.AUTH_DEV_LOGIN || Boolean(env.JWT_SECRET), {
    message: 'AUTH_DEV_LOGIN signs HS256 tokens and needs JWT_SECRET',
    path: ['AUTH_DEV_LOGIN'],
  })
  .superRefine(checkServerApiKeys)
  .refine((env) => env.DATABASE_STALL_TIMEOUT_MS === undefined || env.DATABASE_STALL_TIMEOUT_MS > env.DATABASE_STATEMENT_TIMEOUT_MS, {
    // At or below it, a statement the server is still entitled to run would replace the pool.
    message: 'DATABASE_STALL_TIMEOUT_MS must exceed DATABASE_STATEMENT_TIMEOUT_MS',
    path: ['DATABASE_STALL_TIMEOUT_MS'],
  })
  .refine((env) => env.DRAIN_WINDOW_MS < env.SHUTDOWN_TIMEOUT_MS, {
    // SHUTDOWN_TIMEOUT_MS bounds the drain too: at or past it the process exits 1 mid-drain,
    // before the sends in flight are answered and with sockets never told (server-draining).
    message: 'DRAIN_WINDOW_MS must be below SHUTDOWN_TIMEOUT_MS, which bounds the drain and the close after it',
    path: ['DRAIN_WINDOW_MS'],
  })
  .superRefine(checkRedisEnv);

/**
 * A key id names one key (logs, its rate limit, its Idempotency-Keys, its revocation), and one
 * key has one id: a repeated id or hash would make the id of a call a guess. A revoked id that
 * names no configured key revokes nothing, most likely a misspelt one of a key still accepted:
 * refused at start rather than left working. Only configured ids are echoed, never a hash.
 */
function checkServerApiKeys(
  env: { SERVER_API_KEYS: readonly { id: string; sha256: string }[]; SERVER_API_KEYS_REVOKED: readonly string[] },
  context: z.RefinementCtx,
): void {
  const ids = env.SERVER_API_KEYS.map((key) => key.id);
  const repeatedIds = ids.filter((id, index) => ids.indexOf(id) !== index);
  if (repeatedIds.length > 0) {
    context.addIssue({ code: 'custom', path: ['SERVER_API_KEYS'], message: `each key id once; repeated: ${[...new Set(repeatedIds)].join(', ')}` });
  }
  const hashes = env.SERVER_API_KEYS.map((key) => key.sha256);
  if (new Set(hashes).size !== hashes.length) {
    context.addIssue({ code: 'custom', path: ['SERVER_API_KEYS'], message: 'each key once: two ids have the same SHA-256' });
  }
  // Named by position, not echoed: a key pasted there by mistake looks like an id.
  const unknown = env.SERVER_API_KEYS_REVOKED.flatMap((id, index) => (ids.includes(id) ? [] : [index + 1]));
  if (unknown.length > 0) {
    context.addIssue({
      code: 'custom',
      path: ['SERVER_API_KEYS_REVOKED'],
      message: `every id must name a key of SERVER_API_KEYS; entry ${unknown.join(', ')} names none`,
    });
  }
}

export interface GatewayConfig extends RedisSettings {
  port: number;
  host: string;
  podName: string;
  databaseUrl: string;
  databasePoolSize: number;
  databaseStatementTimeoutMs: number;
  /** A general-pool call unsettled this long stalled: UNAVAILABLE, the pool replaced. */
  databaseStallTimeoutMs: number;
  jwt: { secret?: string; jwksUrl?: string; issuer?: string; audience?: string; maxLifetimeSeconds?: number };
  /** Browser origins allowed to open a socket; `*` allows any. Clients with no Origin pass. */
  corsOrigins: readonly string[];
  roomTtlSeconds: number;
  messageRateLimitPerMinute: number;
  /** How long spare send units leased ahead may stay on this pod (0: one unit per send). */
  messageRateLeaseMs: number;
  /** A room written this often by the pod gets early lock release (message-writer.ts); 0: every room. */
  earlyLockReleaseMessagesPerSecond: number;
  /** A batch of at least this many messages gets early lock release; 0: size does not decide. */
  earlyLockReleaseBatchSize: number;
  /** A small batch waits this long for more messages at a busy pod (message-writer.ts); 0: never. */
  groupCommitLingerMs: number;
  membershipRateLimitPerMinute: number;
  roomCreateRateLimitPerMinute: number;
  /** Memberships in live rooms one user may hold; past it join-room is refused with TOO_MANY_ROOMS. */
  maxRoomsPerUser: number;
  /** Socket events a user may have refused after a lookup per minute; past it their events are refused. */
  failedEventLimitPerMinute: number;
  /** 0: no HTTP rate limit. */
  httpRateLimitPerMinute: number;
  /** Sockets one user may hold across the cluster (0: no bound); past it the handshake is refused. */
  maxSocketsPerUser: number;
  /** Handshakes one user may make per minute across the cluster (0: no bound); past it they are refused. */
  handshakeRateLimitPerMinute: number;
  /** A place under maxSocketsPerUser lapses this long after its pod last renewed it. */
  socketLeaseMs: number;
  /** A socket whose client leaves more than this unread (held in the pod's memory) is dropped. */
  socketMaxQueuedBytes: number;
  /** Fastify's `trustProxy`: whose X-Forwarded-For gives a request's client address. */
  trustProxy: boolean | number | readonly string[];
  devLogin: boolean;
  /** On SIGTERM, connected sockets are closed in batches spread over this window. */
  drainWindowMs: number;
  /** Hard bound on the whole shutdown; keep it under terminationGracePeriodSeconds. */
  shutdownTimeoutMs: number;
  logLevel: string;
  /** Fault injection for test/faults; null (off) unless FAULT_CRASH_AFTER_COMMIT is set. */
  faultCrashAfterCommit: FaultCrashAfterCommit | null;
  /** room-occupied / room-vacated are decided this long after the presence or membership change. */
  roomOccupancyGraceMs: number;
  serverApi: {
    /** Each key's id and the SHA-256 (hex) of the key. */
    keys: readonly { id: string; sha256: string }[];
    revokedKeyIds: readonly string[];
    rateLimitPerMinute: number;
  };
  /** Fault injection for the barrier's tests; 0 (off) unless FAULT_BUS_SUBSCRIBE_DELAY_MS is set. */
  faultBusSubscribeDelayMs: number;
}

/** Every variable the schema reads (the infra lint checks deployments set no other). */
export const ENV_VARIABLES: readonly string[] = Object.freeze(Object.keys(envSchema.shape));

/** Each variable's value when unset (undefined: none, or derived below); test/config/env-docs.test.ts holds the docs to it. */
export const envDefaults = (): Readonly<Record<string, unknown>> => envDefaultsOf(envSchema.shape);

export function loadConfig(env: Record<string, string | undefined>): Readonly<GatewayConfig> {
  const e = parseEnv(envSchema, env);
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    podName: e.POD_NAME ?? `gateway-${process.pid}`,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    databaseStatementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
    databaseStallTimeoutMs: e.DATABASE_STALL_TIMEOUT_MS ?? 2 * e.DATABASE_STATEMENT_TIMEOUT_MS + 5000,
    ...redisSettingsOf(e),
    jwt: Object.freeze({
      ...(e.JWT_SECRET ? { secret: e.JWT_SECRET } : {}),
      ...(e.JWT_JWKS_URL ? { jwksUrl: e.JWT_JWKS_URL } : {}),
      ...(e.JWT_ISSUER ? { issuer: e.JWT_ISSUER } : {}),
      ...(e.JWT_AUDIENCE ? { audience: e.JWT_AUDIENCE } : {}),
      ...(e.JWT_MAX_LIFETIME_SECONDS > 0 ? { maxLifetimeSeconds: e.JWT_MAX_LIFETIME_SECONDS } : {}),
    }),
    corsOrigins: Object.freeze([...e.CORS_ORIGINS]),
    roomTtlSeconds: e.ROOM_TTL_SECONDS,
    messageRateLimitPerMinute: e.MESSAGE_RATE_LIMIT_PER_MINUTE,
    messageRateLeaseMs: e.MESSAGE_RATE_LEASE_MS,
    earlyLockReleaseMessagesPerSecond: e.EARLY_LOCK_RELEASE_MESSAGES_PER_SECOND,
    earlyLockReleaseBatchSize: e.EARLY_LOCK_RELEASE_BATCH_SIZE,
    groupCommitLingerMs: e.GROUP_COMMIT_LINGER_MS,
    membershipRateLimitPerMinute: e.MEMBERSHIP_RATE_LIMIT_PER_MINUTE,
    roomCreateRateLimitPerMinute: e.ROOM_CREATE_RATE_LIMIT_PER_MINUTE,
    maxRoomsPerUser: e.MAX_ROOMS_PER_USER,
    failedEventLimitPerMinute: e.FAILED_EVENT_LIMIT_PER_MINUTE,
    httpRateLimitPerMinute: e.HTTP_RATE_LIMIT_PER_MINUTE,
    maxSocketsPerUser: e.MAX_SOCKETS_PER_USER,
    handshakeRateLimitPerMinute: e.HANDSHAKE_RATE_LIMIT_PER_MINUTE,
    socketLeaseMs: e.SOCKET_LEASE_MS,
    socketMaxQueuedBytes: e.SOCKET_MAX_QUEUED_BYTES,
    trustProxy: Array.isArray(e.TRUST_PROXY) ? Object.freeze([...e.TRUST_PROXY]) : e.TRUST_PROXY,
    devLogin: e.AUTH_DEV_LOGIN,
    drainWindowMs: e.DRAIN_WINDOW_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    logLevel: e.LOG_LEVEL,
    faultCrashAfterCommit: parseFaultCrashAfterCommit(e.FAULT_CRASH_AFTER_COMMIT),
    roomOccupancyGraceMs: e.ROOM_OCCUPANCY_GRACE_MS,
    serverApi: Object.freeze({
      keys: Object.freeze(e.SERVER_API_KEYS.map((key) => Object.freeze({ ...key }))),
      revokedKeyIds: Object.freeze([...e.SERVER_API_KEYS_REVOKED]),
      rateLimitPerMinute: e.SERVER_API_RATE_LIMIT_PER_MINUTE,
    }),
    faultBusSubscribeDelayMs: e.FAULT_BUS_SUBSCRIBE_DELAY_MS,
  });
}
