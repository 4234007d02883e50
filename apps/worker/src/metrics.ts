import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The worker's Prometheus metrics; labels are queue names and table names only. */
export function createWorkerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    queueDepth: new Gauge({
      name: 'chat_worker_queue_depth',
      help: 'Jobs waiting or delayed, by queue (read at scrape time).',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    jobDuration: new Histogram({
      name: 'chat_worker_job_duration_seconds',
      help: 'Run time of completed jobs, by queue (failed runs are in chat_worker_job_failures_total).',
      labelNames: ['queue'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    jobFailures: new Counter({
      name: 'chat_worker_job_failures_total',
      help: 'Failed jobs, by queue.',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    roomsExpired: new Counter({
      name: 'chat_worker_rooms_expired_total',
      help: 'Rooms expired and purged.',
      registers: [registry],
    }),
    rowsPurged: new Counter({
      name: 'chat_worker_rows_purged_total',
      help: 'Rows deleted by the expiry sweep, by table.',
      labelNames: ['table'] as const,
      registers: [registry],
    }),
    presenceOffline: new Counter({
      name: 'chat_worker_presence_offline_total',
      help: 'Users taken offline because their pod stopped heartbeating.',
      registers: [registry],
    }),
    // The endpoint's id is the label `webhook`, not `endpoint`: the Prometheus Operator sets
    // `endpoint` on every series (the scraped port's name), which renamed this one
    // `exported_endpoint` and left the alerts grouping every endpoint under `metrics`.
    webhookPosts: new Counter({
      name: 'chat_worker_webhook_posts_total',
      help: 'Webhook POSTs, by endpoint id and outcome (delivered: a 2xx; failed: retried later).',
      labelNames: ['webhook', 'outcome'] as const,
      registers: [registry],
    }),
    webhookEvents: new Counter({
      name: 'chat_worker_webhook_events_total',
      help: 'Change-feed events acknowledged by webhook endpoints, by endpoint id.',
      labelNames: ['webhook'] as const,
      registers: [registry],
    }),
    webhookLag: new Histogram({
      name: 'chat_worker_webhook_lag_seconds',
      help: 'Age of the oldest change in each acknowledged webhook POST (acknowledged minus committed), by endpoint id.',
      labelNames: ['webhook'] as const,
      buckets: [0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600],
      registers: [registry],
    }),
    postgresReplaced: new Counter({
      name: 'chat_worker_postgres_replaced_total',
      help: "Times a Postgres call stalled past DATABASE_STALL_TIMEOUT_MS and the worker's Postgres connections were replaced.",
      registers: [registry],
    }),
    deadPodResyncs: new Counter({
      name: 'chat_worker_dead_pod_resync_rooms_total',
      help: 'Rooms told to resync because a pod with one of their members died.',
      registers: [registry],
    }),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
