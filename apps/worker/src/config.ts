import { checkRedisEnv, redisEnvShape, redisSettingsOf, type RedisSettings } from '@chat/bus';
import { z } from 'zod';
import { CHANGE_EVENTS } from '@chat/protocol';
import { databaseUrlSchema, WEBHOOK_ENDPOINT_GRACE_MS } from '@chat/db';
import { envDefaultsOf, isPlaceholderSecret, parseEnv } from '@chat/runtime';

/**
 * Webhook endpoints (docs/webhooks.md), as JSON: `[{ "id", "url", "secret", "kinds"? }]`. The
 * id names the endpoint's delivery cursors and logs; `kinds` filters by event name (all when
 * absent). The secret signs each POST and is never logged.
 */
const webhookEndpoint = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'an id of 1-64 letters, digits, _ or -'),
    url: z
      .string()
      .url()
      // The refinement runs after a failed .url() too: a string that is no URL is not parsed
      // here, where it threw a TypeError that stopped the worker without the config's message.
      .refine((url) => {
        const parsed = URL.canParse(url) ? new URL(url) : null;
        return parsed !== null && /^https?:$/.test(parsed.protocol) && parsed.username === '' && parsed.password === '';
      }, 'an http(s) URL without credentials'),
    secret: z
      .string()
      .min(16, 'a secret of at least 16 characters')
      .refine((secret) => !isPlaceholderSecret(secret), "a secret of your own, not the example's CHANGE-ME placeholder"),
    kinds: z.array(z.enum(CHANGE_EVENTS)).min(1).optional(),
  })
  .strict();
export type WebhookEndpoint = z.infer<typeof webhookEndpoint>;

const webhookEndpoints = z
  .string()
  .transform((value, context) => {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      context.addIssue({ code: 'custom', message: 'not JSON' });
      return z.NEVER;
    }
  })
  .pipe(z.array(webhookEndpoint).refine((list) => new Set(list.map((endpoint) => endpoint.id)).size === list.length, 'endpoint ids must be unique'));

/** The worker's Postgres statement_timeout and lock_timeout (deps.ts), which the server enforces. */
export const WORKER_STATEMENT_TIMEOUT_MS = 5000;

/** The only reader of process.env for the worker; parsed once, frozen, fails loudly. */
const envSchema = z.object({
  DATABASE_URL: databaseUrlSchema,
  ...redisEnvShape,
  ROOM_EXPIRING_NOTICE_SECONDS: z.coerce.number().int().min(0).default(300),
  ROOM_TOMBSTONE_TTL_SECONDS: z.coerce.number().int().min(0).default(7 * 86_400),
  SWEEP_INTERVAL_MS: z.coerce.number().int().min(100).default(2000),
  SWEEP_BATCH_SIZE: z.coerce.number().int().min(1).default(1000),
  PRESENCE_GC_INTERVAL_MS: z.coerce.number().int().min(100).default(5000),
  /**
   * A Postgres call (one statement or transaction) of a job not settled by then fails, and its
   * job. If Postgres answered nothing it waited behind meanwhile its connection is dead (the
   * server cancels a statement at its 5 s statement_timeout, but a Postgres gone without a reset
   * never answers) and the worker's Postgres connections are replaced; a call that only waited
   * behind the pool's other work replaces nothing (packages/db/src/stall-guarded-database.ts). Three statement timeouts.
   * Above the statement timeout, as the gateway's: at or below it a statement the server is still
   * entitled to run (a partition move's batch) failed its job and replaced the connections, run after run.
   */
  DATABASE_STALL_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .gt(WORKER_STATEMENT_TIMEOUT_MS, `must exceed the worker's statement timeout (${WORKER_STATEMENT_TIMEOUT_MS} ms)`)
    .default(15_000),
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(1),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  METRICS_PORT: z.coerce.number().int().min(0).max(65_535).default(9091),
  METRICS_HOST: z.string().min(1).default('0.0.0.0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  POD_NAME: z.string().min(1).optional(),
  WEBHOOK_ENDPOINTS: webhookEndpoints.default([]),
  /**
   * How often rooms with undelivered changes are looked for. At most a tenth of
   * WEBHOOK_ENDPOINT_GRACE_MS (30 s): a replica names its endpoints only on the dispatch runs it
   * takes, and one whose endpoints went unnamed that long has them deleted by a replica
   * configured without them (a rolling update), which restarts their sync from the beginning.
   */
  WEBHOOK_POLL_INTERVAL_MS: z.coerce.number().int().min(100).max(WEBHOOK_ENDPOINT_GRACE_MS / 10).default(1000),
  /** One POST's time limit; past it the delivery counts as failed and is retried. */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).default(5000),
  /** Events per POST (all of one room, in order). */
  WEBHOOK_BATCH_SIZE: z.coerce.number().int().min(1).max(100).default(50),
  /** Deliveries in flight per worker process (different rooms or endpoints). */
  WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(8),
})
  .superRefine(checkRedisEnv);

export interface WorkerConfig extends RedisSettings {
  databaseUrl: string;
  databaseStallTimeoutMs: number;
  expiringNoticeMs: number;
  tombstoneTtlMs: number;
  sweepIntervalMs: number;
  sweepBatchSize: number;
  presenceGcIntervalMs: number;
  concurrency: number;
  shutdownTimeoutMs: number;
  /** `/metrics` and `/livez`; port 0 picks a free one (tests). */
  metricsPort: number;
  metricsHost: string;
  logLevel: string;
  podName: string;
  webhooks: {
    endpoints: readonly WebhookEndpoint[];
    pollIntervalMs: number;
    timeoutMs: number;
    batchSize: number;
    concurrency: number;
  };
}

/** Every variable the schema reads (the infra lint checks deployments set no other). */
export const ENV_VARIABLES: readonly string[] = Object.freeze(Object.keys(envSchema.shape));

/** Each variable's value when unset (undefined: none, or derived below); test/config/env-docs.test.ts holds the docs to it. */
export const envDefaults = (): Readonly<Record<string, unknown>> => envDefaultsOf(envSchema.shape);

export function loadWorkerConfig(env: Record<string, string | undefined>): Readonly<WorkerConfig> {
  const e = parseEnv(envSchema, env);
  return Object.freeze({
    databaseUrl: e.DATABASE_URL,
    databaseStallTimeoutMs: e.DATABASE_STALL_TIMEOUT_MS,
    ...redisSettingsOf(e),
    expiringNoticeMs: e.ROOM_EXPIRING_NOTICE_SECONDS * 1000,
    tombstoneTtlMs: e.ROOM_TOMBSTONE_TTL_SECONDS * 1000,
    sweepIntervalMs: e.SWEEP_INTERVAL_MS,
    sweepBatchSize: e.SWEEP_BATCH_SIZE,
    presenceGcIntervalMs: e.PRESENCE_GC_INTERVAL_MS,
    concurrency: e.WORKER_CONCURRENCY,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    metricsPort: e.METRICS_PORT,
    metricsHost: e.METRICS_HOST,
    logLevel: e.LOG_LEVEL,
    podName: e.POD_NAME ?? `worker-${process.pid}`,
    webhooks: Object.freeze({
      endpoints: Object.freeze(e.WEBHOOK_ENDPOINTS.map((endpoint) => Object.freeze({ ...endpoint }))),
      pollIntervalMs: e.WEBHOOK_POLL_INTERVAL_MS,
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      batchSize: e.WEBHOOK_BATCH_SIZE,
      concurrency: e.WEBHOOK_CONCURRENCY,
    }),
  });
}
