import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The gateway's Prometheus metrics. Labels are bounded sets (event names, error codes,
 * disconnect reasons) — never room or user ids, whose cardinality is unbounded.
 */
export function createGatewayMetrics() {
  const registry = new Registry();
  // Process metrics, including nodejs_eventloop_lag_seconds.
  collectDefaultMetrics({ register: registry });

  const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
  return {
    registry,
    connectedSockets: new Gauge({
      name: 'chat_connected_sockets',
      help: 'Sockets connected to this pod.',
      registers: [registry],
    }),
    connections: new Counter({
      name: 'chat_connections_total',
      help: 'Sockets that completed the handshake.',
      registers: [registry],
    }),
    handshakeFailures: new Counter({
      name: 'chat_handshake_failures_total',
      help: 'Handshakes refused, by error code.',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    disconnections: new Counter({
      name: 'chat_disconnections_total',
      help: 'Sockets disconnected, by Socket.IO reason.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    eventsReceived: new Counter({
      name: 'chat_events_received_total',
      help: 'Client events received, by event name.',
      labelNames: ['event'] as const,
      registers: [registry],
    }),
    errors: new Counter({
      name: 'chat_errors_total',
      help: 'Errors answered to clients, by event and error code.',
      labelNames: ['event', 'code'] as const,
      registers: [registry],
    }),
    roomLookups: new Counter({
      name: 'chat_room_lookups_total',
      help: 'Rooms looked up in Postgres by id (a cache miss), by whether the room was found.',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    messagesPersisted: new Counter({
      name: 'chat_messages_persisted_total',
      help: 'Messages committed to Postgres by this pod.',
      registers: [registry],
    }),
    persistBatchSize: new Histogram({
      name: 'chat_persist_batch_size',
      help: 'Messages per group-commit transaction.',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers: [registry],
    }),
    persistDuration: new Histogram({
      name: 'chat_persist_duration_seconds',
      help: 'Duration of one group-commit transaction.',
      buckets: latencyBuckets,
      registers: [registry],
    }),
    ackDuration: new Histogram({
      name: 'chat_ack_duration_seconds',
      help: 'From receiving a client event to answering it, by event.',
      labelNames: ['event'] as const,
      buckets: latencyBuckets,
      registers: [registry],
    }),
    broadcasts: new Counter({
      name: 'chat_broadcasts_total',
      help: 'Room broadcasts published, by event.',
      labelNames: ['event'] as const,
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'chat_rate_limited_total',
      help: 'Sends refused by the per-user rate limit.',
      registers: [registry],
    }),
    redisErrors: new Counter({
      name: 'chat_redis_errors_total',
      help: 'Redis client errors, by client.',
      labelNames: ['client'] as const,
      registers: [registry],
    }),
    postgresErrors: new Counter({
      name: 'chat_postgres_errors_total',
      help: 'Postgres operations that failed because the database was unavailable or slow.',
      registers: [registry],
    }),
    postgresReplaced: new Counter({
      name: 'chat_postgres_replaced_total',
      help: "Times a call on the pod's general Postgres pool stalled past DATABASE_STALL_TIMEOUT_MS and the pool was replaced.",
      registers: [registry],
    }),
    publishGapResyncs: new Counter({
      name: 'chat_publish_gap_resync_rooms_total',
      help: 'Rooms told to resync because this pod broadcast to them while it could not publish to Redis.',
      registers: [registry],
    }),
    busResyncs: new Counter({
      name: 'chat_bus_subscription_resync_sockets_total',
      help: 'Sockets told to resync because this pod subscribed to one of their rooms late (a mirrored join, a slow bus) or re-subscribed after losing it.',
      registers: [registry],
    }),
    slowConsumersDropped: new Counter({
      name: 'chat_slow_consumers_dropped_total',
      help: 'Sockets closed because their client left more than SOCKET_MAX_QUEUED_BYTES unread.',
      registers: [registry],
    }),
  };
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
