import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import {
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Server } from 'socket.io';
import { createTokenVerifier, type TokenVerifier } from '@chat/auth';
import {
  createDatabase,
  createMembershipsRepository,
  createMessagesRepository,
  createRoomsRepository,
  createUsersRepository,
  isDatabaseUnavailable,
} from '@chat/db';
import type { GatewayConfig } from './config.ts';
import { createRequestAuth } from './http/authenticate.ts';
import { createRequestTokens } from './http/request-token.ts';
import { devLoginRoutes } from './http/dev-login.routes.ts';
import { registerErrorHandling } from './http/error-handler.ts';
import { healthRoutes } from './http/health.routes.ts';
import { messagesRoutes } from './http/messages.routes.ts';
import { registerHttpRateLimit } from './http/rate-limit.ts';
import { roomsRoutes } from './http/rooms.routes.ts';
import { webRoutes } from './http/web.routes.ts';
import { createPresenceStore } from '@chat/presence';
import { createLogger } from './logger.ts';
import { createGatewayMetrics, type GatewayMetrics } from './metrics.ts';
import { registerApiDocs } from './http/docs.routes.ts';
import { metricsRoutes } from './http/metrics.routes.ts';
import { drainSockets } from './realtime/drain.ts';
import { createPresenceTracker } from './realtime/presence-tracker.ts';
import { handleConnection } from './realtime/connection.ts';
import { createHandshakeMiddleware } from './realtime/handshake.ts';
import { createRoomEventsAdapter } from './realtime/room-events.adapter.ts';
import { createSocketServer } from './realtime/socket-server.ts';
import { trackPublishGaps } from './realtime/publish-gaps.ts';
import { resyncAfterResubscribe } from './realtime/resync.ts';
import { dropConnection, queuedBytes } from './realtime/engine-socket.ts';
import { startSlowConsumerSweep } from './realtime/slow-consumers.ts';
import { createAfterCommitHook } from './fault-hooks.ts';
import type { ChatNamespace } from './realtime/types.ts';
import { createRedisClients, waitReady } from './redis.ts';
import { createMessageService } from './services/message.service.ts';
import { BatchStalledError, MessageWriter } from './services/message-writer.ts';
import { RoomCache } from './services/room-cache.ts';
import { createRoomService } from './services/room.service.ts';
import { createUserRateLimiter } from './services/user-rate-limiter.ts';
import { createUserAuthService } from './services/user-auth.service.ts';

export interface Gateway {
  http: FastifyInstance;
  metrics: GatewayMetrics;
  /** SIGTERM, step one: readiness off, no new sockets, clients told and closed over the window. */
  drain(windowMs?: number): Promise<void>;
  io: Server;
  nsp: ChatNamespace;
  logger: Logger;
  /** Stops sockets, finishes in-flight writes, then closes HTTP, Redis and Postgres in order. */
  close(): Promise<void>;
}

export interface GatewayOptions {
  logger?: Logger;
  /** Defaults to the verifier `config.jwt` describes; tests wrap that one to count verifications. */
  verifyToken?: TokenVerifier;
}

/** How often sockets are checked for unread bytes beyond SOCKET_MAX_QUEUED_BYTES. */
const SLOW_CONSUMER_SWEEP_MS = 1000;

/** Builds a gateway pod: everything wired, nothing listening (main.ts and tests listen). */
export async function buildGateway(config: Readonly<GatewayConfig>, options: GatewayOptions = {}): Promise<Gateway> {
  const logger = options.logger ?? createLogger({ level: config.logLevel, pod: config.podName });
  const database = createDatabase({
    url: config.databaseUrl,
    maxConnections: config.databasePoolSize,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
    applicationName: config.podName,
  });
  const metrics = createGatewayMetrics();
  const redis = createRedisClients(config.redisUrl, logger, (client) => metrics.redisErrors.inc({ client }));
  await Promise.all([redis.commands, redis.pub, redis.sub].map((client) => waitReady(client, 5000)));

  const users = createUsersRepository(database.db);
  const rooms = createRoomsRepository(database.db);
  const memberships = createMembershipsRepository(database.sql);
  const messages = createMessagesRepository(database.sql);

  const http = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    requestIdHeader: 'x-request-id',
    bodyLimit: 64 * 1024,
    trustProxy: (Array.isArray(config.trustProxy) ? [...config.trustProxy] : config.trustProxy) as FastifyServerOptions['trustProxy'],
  }).withTypeProvider<ZodTypeProvider>();
  http.setValidatorCompiler(validatorCompiler);
  http.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(http);
  const verifyToken = options.verifyToken ?? createTokenVerifier(config.jwt);
  // One verification per request, shared by the rate limiter and the routes' authentication.
  const requestTokens = createRequestTokens(verifyToken);
  // Before any route: the limit attaches itself to the routes registered after it.
  await registerHttpRateLimit(http, {
    tokens: requestTokens,
    redis: redis.commands,
    keyPrefix: config.redisPrefix,
    perMinute: config.httpRateLimitPerMinute,
  });
  await registerApiDocs(http);

  let draining = false;

  const { io, nsp } = createSocketServer({
    httpServer: http.server,
    pub: redis.pub,
    sub: redis.sub,
    redisPrefix: config.redisPrefix,
    corsOrigins: config.corsOrigins,
    logger,
    isDraining: () => draining,
  });

  resyncAfterResubscribe(redis.sub, nsp, logger);
  const publishGaps = trackPublishGaps({
    pub: redis.pub,
    nsp,
    logger,
    onResync: (rooms) => metrics.publishGapResyncs.inc(rooms),
  });
  const events = createRoomEventsAdapter(nsp, metrics, publishGaps);
  const presenceStore = createPresenceStore(redis.commands, config.redisPrefix);
  const userAuth = createUserAuthService({ verify: verifyToken, users });
  const roomCache = new RoomCache(rooms);
  const writer = new MessageWriter(messages, {
    committed(batchSize, stored, seconds) {
      metrics.persistBatchSize.observe(batchSize);
      metrics.persistDuration.observe(seconds);
      metrics.messagesPersisted.inc(stored);
    },
    failed(error) {
      const stalled = error instanceof BatchStalledError;
      if (stalled) logger.error({ err: error }, 'group commit stalled: moving on without the batch');
      if (stalled || isDatabaseUnavailable(error)) metrics.postgresErrors.inc();
    },
  }, { stalledAfterMs: 2 * config.databaseStatementTimeoutMs + 5000 });
  const roomService = createRoomService({
    rooms,
    memberships,
    onlineUsers: (userIds) => presenceStore.onlineUsers(userIds),
    roomCache,
    events,
    roomTtlSeconds: config.roomTtlSeconds,
    // join-room and leave-room move sockets on every pod and announce to the room: without a
    // budget, one client toggling a membership floods the room's members and the database.
    membershipLimiter: createUserRateLimiter({
      redis: redis.commands,
      keyPrefix: `${config.redisPrefix}:rl:membership`,
      perMinute: config.membershipRateLimitPerMinute,
      refusal: 'TOO_MANY_REQUESTS',
    }),
    creationLimiter: createUserRateLimiter({
      redis: redis.commands,
      keyPrefix: `${config.redisPrefix}:rl:room-create`,
      perMinute: config.roomCreateRateLimitPerMinute,
      refusal: 'TOO_MANY_REQUESTS',
    }),
  });
  const messageService = createMessageService({
    messages,
    writer,
    roomService,
    events,
    rateLimiter: createUserRateLimiter({
      redis: redis.commands,
      keyPrefix: `${config.redisPrefix}:rl:send`,
      perMinute: config.messageRateLimitPerMinute,
      refusal: 'RATE_LIMITED',
    }),
    isMember: memberships.isMember,
    // A frozen Postgres never sends its statement timeout: bound the sender's wait ourselves,
    // one statement timeout plus a second of slack.
    writeDeadlineMs: config.databaseStatementTimeoutMs + 1000,
    afterCommit: createAfterCommitHook(config.faultCrashAfterCommit),
  });

  const presence = createPresenceTracker({ store: presenceStore, nsp, logger, podName: config.podName });
  presence.start();

  nsp.use(
    createHandshakeMiddleware({
      auth: userAuth,
      memberships,
      logger,
      onRefused: (code) => metrics.handshakeFailures.inc({ code }),
      socketsOf: (userId) => presence.socketsOf(userId),
      maxSocketsPerUser: config.maxSocketsPerUser,
    }),
  );
  nsp.on('connection', (socket) =>
    handleConnection(socket, { roomService, messageService, presence, logger, metrics }),
  );
  const slowConsumers = startSlowConsumerSweep({
    nsp,
    maxQueuedBytes: config.socketMaxQueuedBytes,
    intervalMs: SLOW_CONSUMER_SWEEP_MS,
    onDropped: (socket, queued) => {
      metrics.slowConsumersDropped.inc();
      logger.warn({ userId: socket.data.user.id, socketId: socket.id, queued }, 'slow consumer dropped');
    },
  });

  const auth = createRequestAuth(userAuth, requestTokens);
  await http.register(
    healthRoutes({
      isReady: async () => {
        if (draining) return false;
        await Promise.all([database.sql`select 1`, redis.commands.ping()]);
        return true;
      },
    }),
  );
  await http.register(metricsRoutes(metrics.registry));
  await http.register(roomsRoutes({ roomService, messageService, auth }));
  await http.register(messagesRoutes({ messageService, auth }));
  await http.register(webRoutes());
  if (config.devLogin && config.jwt.secret) {
    await http.register(devLoginRoutes({ ...config.jwt, secret: config.jwt.secret }));
  }

  // Fastify's close() waits for open websockets forever; Socket.IO must go first.
  // `local`: a plain disconnectSockets() would travel the adapter and close every pod's sockets.
  http.addHook('preClose', async () => {
    draining = true;
    slowConsumers.stop();
    // A graceful close waits for the client to read what is queued for it: one that has stopped
    // reading would hold the shutdown until the heartbeat gives up on it (40 s).
    for (const socket of nsp.sockets.values()) if (queuedBytes(socket) > 0) dropConnection(socket);
    nsp.local.disconnectSockets(true);
    io.local.disconnectSockets(true);
    await io.close().catch(() => undefined);
  });

  let closed: Promise<void> | null = null;
  return {
    http,
    io,
    nsp,
    logger,
    metrics,
    async drain(windowMs = config.drainWindowMs) {
      draining = true;
      await drainSockets(nsp, windowMs, logger);
      await writer.idle();
    },
    close() {
      closed ??= (async () => {
        await http.close();
        await presence.stop();
        await writer.idle();
        await redis.close();
        await database.close();
      })();
      return closed;
    },
  };
}
