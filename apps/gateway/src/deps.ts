import type { Logger } from 'pino';
import { createTokenVerifier, type TokenVerifier } from '@chat/auth';
import { busReady } from '@chat/bus';
import {
  createDatabase,
  StallGuardedDatabase,
  createMembershipsRepository,
  createMessagesRepository,
  createRoomsRepository,
  createRoomChangesRepository,
  createRoomLifetimeRepository,
  createServerIdempotencyRepository,
  createUsersRepository,
  createSessionsRepository,
  type Database,
  type MembershipsRepository,
  type MessagesRepository,
  type RoomsRepository,
  type RoomChangesRepository,
  type RoomLifetimeRepository,
  type ServerIdempotencyRepository,
  type UsersRepository,
  type SessionsRepository,
  type SessionRequest,
} from '@chat/db';
import { createPresenceStore, type PresenceStore } from '@chat/presence';
import type { GatewayConfig } from './config.ts';
import { isDatabaseUnavailable } from './errors/error-classification.ts';
import { createLogger } from './infrastructure/logger.ts';
import { BatchStalledError, MessageWriter } from './infrastructure/message-writer.ts';
import { WriterConnection } from './infrastructure/writer-connection.ts';
import { createRedisClients, type RedisClients } from './infrastructure/redis-clients.ts';
import { RoomCache } from './infrastructure/room-cache.ts';
import { LeasedRateLimiter } from './infrastructure/leased-rate-limiter.ts';
import { createUserRateLimiter, type UserRateLimiter } from './infrastructure/user-rate-limiter.ts';
import { createAfterCommitHook } from './lib/fault-hooks.ts';
import { createTurnBatcher } from './lib/turn-batcher.ts';
import { createGatewayMetrics, type GatewayMetrics } from './metrics.ts';
import { createFailedEventBudget, type FailedEventBudget } from './realtime/failed-event-budget.ts';
import { createHealthService, type HealthService } from './services/health.service.ts';
import { createMessageService, type MessageService } from './services/message.service.ts';
import { createChangeFeedService, type ChangeFeedService } from './services/change-feed.service.ts';
import { createServerApiService, type ServerApiService } from './services/server-api.service.ts';
import type { RoomEvents } from './services/room-events.ts';
import { createRoomService, type RoomService } from './services/room.service.ts';
import { createUserAuthService, type UserAuthService } from './services/user-auth.service.ts';

export interface GatewayOptions {
  logger?: Logger;
  /** Defaults to the verifier `config.jwt` describes; tests wrap that one to count verifications. */
  verifyToken?: TokenVerifier;
  /** Tests only: the token-expiry timer's longest step (default: what setTimeout holds, ~24.8 days). */
  tokenExpiryMaxStepMs?: number;
}

/**
 * Handshakes whose users are looked up (and stored) by one statement at most: a reconnect storm's
 * handshakes of one loop turn share a query; 500 users' rows and memberships are a few
 * milliseconds of Postgres.
 */
const HANDSHAKE_BATCH = 500;

/** What the pod talks to: Postgres, Redis, the token verifier, and the adapters over them. */
export interface Infrastructure {
  logger: Logger;
  metrics: GatewayMetrics;
  database: Database;
  /** One connection for the group commit's batches (asynchronous commit + durability barrier). */
  writerDatabase: WriterConnection;
  redis: RedisClients;
  verifyToken: TokenVerifier;
  presenceStore: PresenceStore;
  /** The group commit of sent messages. */
  writer: MessageWriter;
  /** The send budget (MESSAGE_RATE_LIMIT_PER_MINUTE), leased from Redis a few units at a time. */
  sendLimiter: LeasedRateLimiter;
  repositories: {
    users: UsersRepository;
    rooms: RoomsRepository;
    memberships: MembershipsRepository;
    sessions: SessionsRepository;
    messages: MessagesRepository;
    changes: RoomChangesRepository;
    lifetime: RoomLifetimeRepository;
    idempotency: ServerIdempotencyRepository;
  };
}

export interface Services {
  userAuth: UserAuthService;
  roomService: RoomService;
  messageService: MessageService;
  changeFeed: ChangeFeedService;
  serverApi: ServerApiService;
  /** What socket events refused after a lookup cost their user (FAILED_EVENT_LIMIT_PER_MINUTE). */
  failedEvents: FailedEventBudget;
  /** Socket handshakes per user (HANDSHAKE_RATE_LIMIT_PER_MINUTE); null: no bound. */
  handshakes: UserRateLimiter | null;
  health: HealthService;
}

/** Connects to Postgres and Redis (waiting a bounded time for Redis) and builds the adapters. */
export async function buildInfrastructure(config: Readonly<GatewayConfig>, options: GatewayOptions): Promise<Infrastructure> {
  const logger = options.logger ?? createLogger({ level: config.logLevel, pod: config.podName });
  const metrics = createGatewayMetrics();
  const stalledAfterMs = config.databaseStallTimeoutMs;
  // The general pool (everything but the group commit's writer, which has its own deadline):
  // every call bounded, the pool replaced when one stalls (Postgres gone without a reset), so
  // the pod serves again as soon as Postgres answers; one that only waited behind a busy pool
  // replaces nothing. Either answers UNAVAILABLE (isDatabaseUnavailable). Logged once per episode; the URL (its password) is never logged.
  const database: Database = new StallGuardedDatabase(
    () =>
      createDatabase({
        url: config.databaseUrl,
        maxConnections: config.databasePoolSize,
        statementTimeoutMs: config.databaseStatementTimeoutMs,
        applicationName: config.podName,
      }),
    {
      stalledAfterMs,
      onReplaced(firstOfEpisode) {
        metrics.postgresReplaced.inc();
        if (firstOfEpisode) logger.error({ stalledAfterMs }, "Postgres call stalled: answered UNAVAILABLE, the pod's Postgres connections replaced");
        else logger.debug({ stalledAfterMs }, 'Postgres call stalled again: connections replaced again');
      },
      onAnswering: () => logger.info('Postgres answering again after a stall'),
    },
  );
  const redis = createRedisClients({
    state: config.state,
    bus: config.bus,
    logger,
    onError: (client) => metrics.redisErrors.inc({ client }),
    subscribeDelayMs: config.faultBusSubscribeDelayMs,
  });
  await Promise.all([redis.commands, redis.pub, redis.sub].map((client) => busReady(client, 5000)));

  // The group commit's own connection, committing asynchronously with a durability barrier
  // behind each batch of a busy room, so that its row lock is released before the fsync; the
  // other batches commit synchronously in one query (message-writer.ts, messages.repository.ts).
  const writerDatabase = new WriterConnection(() =>
    createDatabase({
      url: config.databaseUrl,
      maxConnections: 1,
      statementTimeoutMs: config.databaseStatementTimeoutMs,
      applicationName: `${config.podName}-writer`,
      synchronousCommit: 'off',
    }),
  );
  const messages = createMessagesRepository(database.sql, { batchConnection: writerDatabase });
  const writer = new MessageWriter(messages, {
    committed(batchSize, stored, seconds) {
      metrics.persistBatchSize.observe(batchSize);
      metrics.persistDuration.observe(seconds);
      metrics.messagesPersisted.inc(stored);
    },
    stalled() {
      writerDatabase.replace();
    },
    failed(error) {
      const stalled = error instanceof BatchStalledError;
      if (stalled) logger.error({ err: error }, 'group commit stalled: moving on without the batch');
      if (stalled || isDatabaseUnavailable(error)) metrics.postgresErrors.inc();
    },
  }, {
    stalledAfterMs: 2 * config.databaseStatementTimeoutMs + 5000,
    earlyReleaseMessagesPerSecond: config.earlyLockReleaseMessagesPerSecond,
    earlyReleaseBatchSize: config.earlyLockReleaseBatchSize,
    lingerMs: config.groupCommitLingerMs,
  });

  return {
    logger,
    metrics,
    database,
    writerDatabase,
    redis,
    verifyToken: options.verifyToken ?? createTokenVerifier(config.jwt),
    presenceStore: createPresenceStore(redis.commands, config.stateKeyPrefix),
    writer,
    sendLimiter: new LeasedRateLimiter({
      redis: redis.commands,
      keyPrefix: `${config.redisPrefix}:rl:send-lease`,
      perMinute: config.messageRateLimitPerMinute,
      leaseMs: config.messageRateLeaseMs,
    }),
    repositories: {
      users: createUsersRepository(database.db),
      rooms: createRoomsRepository(database.db),
      memberships: createMembershipsRepository(database.sql),
      sessions: createSessionsRepository(database.sql),
      messages,
      changes: createRoomChangesRepository(database.sql),
      lifetime: createRoomLifetimeRepository(database.sql),
      idempotency: createServerIdempotencyRepository(database.sql),
    },
  };
}

/** The services both transports call; `events` is how they reach sockets on every pod. */
export function buildServices(
  config: Readonly<GatewayConfig>,
  infra: Infrastructure,
  deps: { events: RoomEvents; isDraining(): boolean },
): Services {
  const { redis, database, repositories, presenceStore, writer, sendLimiter } = infra;
  const { events } = deps;
  const userRateLimiter = (name: string, perMinute: number, refusal: 'RATE_LIMITED' | 'TOO_MANY_REQUESTS') =>
    createUserRateLimiter({ redis: redis.commands, keyPrefix: `${config.redisPrefix}:rl:${name}`, perMinute, refusal });

  const roomCache = new RoomCache(repositories.rooms, {
    onLookup: (found) => infra.metrics.roomLookups.inc({ result: found ? 'found' : 'missing' }),
  });
  const roomService = createRoomService({
    rooms: repositories.rooms,
    memberships: repositories.memberships,
    onlineUsers: (userIds) => presenceStore.onlineUsers(userIds),
    roomCache,
    events,
    roomTtlSeconds: config.roomTtlSeconds,
    // join-room and leave-room move sockets on every pod and announce to the room: without a
    // budget, one client toggling a membership floods the room's members and the database.
    membershipLimiter: userRateLimiter('membership', config.membershipRateLimitPerMinute, 'TOO_MANY_REQUESTS'),
    creationLimiter: userRateLimiter('room-create', config.roomCreateRateLimitPerMinute, 'TOO_MANY_REQUESTS'),
    maxRoomsPerUser: config.maxRoomsPerUser,
  });
  const messageService = createMessageService({
    messages: repositories.messages,
    writer,
    roomService,
    events,
    rateLimiter: sendLimiter,
    isMember: repositories.memberships.isMember,
    // A frozen Postgres never sends its statement timeout: bound the sender's wait ourselves,
    // one statement timeout plus a second of slack.
    writeDeadlineMs: config.databaseStatementTimeoutMs + 1000,
    afterCommit: createAfterCommitHook(config.faultCrashAfterCommit),
  });
  return {
    userAuth: createUserAuthService({
      verify: infra.verifyToken,
      openSession: createTurnBatcher((requests: SessionRequest[]) => repositories.sessions.open(requests), { maxBatch: HANDSHAKE_BATCH }),
      knownRooms: roomCache,
    }),
    roomService,
    messageService,
    changeFeed: createChangeFeedService({ changes: repositories.changes, roomService, isMember: repositories.memberships.isMember }),
    serverApi: createServerApiService({
      users: repositories.users,
      lifetime: repositories.lifetime,
      idempotency: repositories.idempotency,
      writer,
      roomService,
      events,
      writeDeadlineMs: config.databaseStatementTimeoutMs + 1000,
    }),
    failedEvents: createFailedEventBudget(userRateLimiter('failed', config.failedEventLimitPerMinute, 'TOO_MANY_REQUESTS')),
    // A client reconnecting in a loop would otherwise cost a database lookup per handshake and,
    // each time its user comes online, a presence announcement to every one of its rooms.
    handshakes: config.handshakeRateLimitPerMinute > 0 ? userRateLimiter('handshake', config.handshakeRateLimitPerMinute, 'TOO_MANY_REQUESTS') : null,
    // Postgres only: a pod that cannot reach it refuses every handshake (they read the user's
    // rooms), so it had better leave the Service. Redis is not checked: every pod shares it, and
    // while it does not answer the pods serve in their degraded mode (local delivery then
    // resync, per-pod limits); failing readiness on it took every pod out of the Service at
    // once and turned that into refusing everyone at the load balancer.
    health: createHealthService({
      isDraining: deps.isDraining,
      checks: [() => database.sql`select 1`],
    }),
  };
}
