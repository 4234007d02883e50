import { Queue } from 'bullmq';
import pino, { type Logger } from 'pino';
import { JOB_CATALOG, bullPrefix } from '@chat/jobs';
import {
  createDatabase,
  StallGuardedDatabase,
  createMessagePartitionsRepository,
  createMembershipsRepository,
  createMessagesRepository,
  createRoomExpiryRepository,
  createUsersRepository,
  createRoomChangesRepository,
  createRoomOccupancyRepository,
  type RoomOccupancyRepository,
  createWebhookCursorsRepository,
  type RoomChangesRepository,
  type WebhookCursorsRepository,
  type Database,
  type MessagePartitionsRepository,
  type MembershipsRepository,
  type MessagesRepository,
  type RoomExpiryRepository,
  type UsersRepository,
} from '@chat/db';
import { createOccupancyQueue, createPresenceStore, type OccupancyQueue, type PresenceStore } from '@chat/presence';
import { WORKER_STATEMENT_TIMEOUT_MS, type WorkerConfig } from './config.ts';
import { createChatEmitter, type ChatEmitter } from './infrastructure/chat-emitter.ts';
import { createWorkerRedis, type WorkerRedis } from './infrastructure/redis-connections.ts';
import { createWorkerMetrics, type WorkerMetrics } from './metrics.ts';

/** What the worker's jobs talk to. */
export interface WorkerDeps {
  logger: Logger;
  metrics: WorkerMetrics;
  database: Database;
  redis: WorkerRedis;
  emitter: ChatEmitter;
  presence: PresenceStore;
  /** Rooms and users whose occupancy is to be looked at (room-occupied / room-vacated). */
  occupancyQueue: OccupancyQueue;
  repositories: {
    memberships: MembershipsRepository;
    messages: MessagesRepository;
    users: UsersRepository;
    expiry: RoomExpiryRepository;
    partitions: MessagePartitionsRepository;
    changes: RoomChangesRepository;
    webhookCursors: WebhookCursorsRepository;
    occupancy: RoomOccupancyRepository;
  };
  /** Queues the jobs add to (the runner's own queues run them): webhook deliveries. */
  queues: { webhookDelivery: Queue };
}

export function buildWorkerDeps(config: Readonly<WorkerConfig>, options: { logger?: Logger }): WorkerDeps {
  const logger = options.logger ?? pino({ level: config.logLevel, base: { pod: config.podName } });
  const metrics = createWorkerMetrics();
  const stalledAfterMs = config.databaseStallTimeoutMs;
  // Every job's Postgres calls bounded; the pool replaced when one stalls (a Postgres gone
  // without a reset), not when one only waited behind the pool's other work. Logged once per episode; the URL (its password) is never logged.
  const database: Database = new StallGuardedDatabase(
    () => createDatabase({ url: config.databaseUrl, maxConnections: 4, statementTimeoutMs: WORKER_STATEMENT_TIMEOUT_MS, applicationName: config.podName }),
    {
      stalledAfterMs,
      onReplaced(firstOfEpisode) {
        metrics.postgresReplaced.inc();
        if (firstOfEpisode) logger.error({ stalledAfterMs }, "Postgres call stalled: its job failed, the worker's Postgres connections replaced");
        else logger.debug({ stalledAfterMs }, 'Postgres call stalled again: connections replaced again');
      },
      onAnswering: () => logger.info('Postgres answering again after a stall'),
    },
  );
  const redis = createWorkerRedis(config.state, config.bus, logger);
  // Announcements are at-most-once: a publish that fails during a bus outage is logged, and
  // the emit resolves false instead of rejecting.
  const emitter = createChatEmitter(redis.bus, {
    redisPrefix: config.redisPrefix,
    adapter: config.busAdapter,
    onError: (error) => logger.warn({ err: error }, 'emit lost while the bus is unavailable'),
  });
  return {
    logger,
    metrics,
    database,
    redis,
    emitter,
    presence: createPresenceStore(redis.emitter, config.stateKeyPrefix),
    occupancyQueue: createOccupancyQueue(redis.emitter, config.stateKeyPrefix),
    repositories: {
      memberships: createMembershipsRepository(database.sql),
      messages: createMessagesRepository(database.sql),
      users: createUsersRepository(database.db),
      expiry: createRoomExpiryRepository(database.sql),
      partitions: createMessagePartitionsRepository(database.sql),
      changes: createRoomChangesRepository(database.sql),
      webhookCursors: createWebhookCursorsRepository(database.sql),
      occupancy: createRoomOccupancyRepository(database.sql),
    },
    queues: {
      webhookDelivery: new Queue(JOB_CATALOG.webhookDelivery.queue, {
        connection: redis.producer,
        prefix: bullPrefix(config.stateKeyPrefix),
      }).on('error', (error) => logger.debug({ err: error }, 'webhook delivery queue error')),
    },
  };
}
