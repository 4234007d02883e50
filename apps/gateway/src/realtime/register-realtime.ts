import type { Server as HttpServer } from 'node:http';
import type { Logger } from 'pino';
import type { Server } from 'socket.io';
import { busChannelPrefix, mainChannel, roomBusChannel, roomOfBusChannel } from '@chat/bus';
import { createOccupancyQueue, type PresenceStore } from '@chat/presence';
import { CHAT_NAMESPACE } from '@chat/protocol';
import type { GatewayConfig } from '../config.ts';
import type { Services } from '../deps.ts';
import { createOccupancyMarks, type OccupancyMarks } from '../infrastructure/occupancy-marks.ts';
import type { RedisClients } from '../infrastructure/redis-clients.ts';
import { createSocketLeases, type SocketLeases } from '../infrastructure/socket-leases.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { RoomEvents } from '../services/room-events.ts';
import { createConnectionHandler } from './connection.ts';
import { createHandshakeMiddleware } from './handshake.ts';
import { createMembershipMoves, type MembershipMoves } from './membership-moves.ts';
import { createMembershipReconciler } from './membership-reconciler.ts';
import { createPresenceTracker, type PresenceTracker } from './presence-tracker.ts';
import { trackPublishGaps } from './publish-gaps.ts';
import { createRoomEventsAdapter } from './room-events.adapter.ts';
import { startSlowConsumerSweep } from './slow-consumers.ts';
import { createSocketServer } from './socket-server.ts';
import { CLASSIC_ADAPTER_BARRIER, createSubscriptionBarrier, type SubscriptionBarrier } from './subscription-barrier.ts';
import type { ChatNamespace } from './types.ts';

/** How often sockets are checked for unread bytes beyond SOCKET_MAX_QUEUED_BYTES. */
const SLOW_CONSUMER_SWEEP_MS = 1000;
/**
 * How long a handshake or join waits for this pod's subscription to the room (one round trip
 * to the bus when it is healthy) before it goes ahead and resyncs the socket later.
 */
const SUBSCRIBE_BARRIER_TIMEOUT_MS = 3000;

export interface Realtime {
  io: Server;
  nsp: ChatNamespace;
  /** The services' RoomEvents port, over the Redis adapter. */
  events: RoomEvents;
  /** Holds back what tells a client it is in a room until this pod hears the room's broadcasts. */
  barrier: SubscriptionBarrier;
  presence: PresenceTracker;
  /** The users' socket places across the cluster; null when MAX_SOCKETS_PER_USER is 0 (no bound). */
  leases: SocketLeases | null;
  /** The marks that have the worker look at rooms' occupancy; what Redis did not take is retried. */
  occupancy: OccupancyMarks;
  /** Calls `listener` whenever the bus's main channel was lost and is subscribed again. */
  onMainChannelBack(listener: () => void): void;
  /** This pod's announcements of membership moves; the reconciler hears its own pod's here. */
  moves: MembershipMoves;
}

interface RealtimeDeps {
  config: Readonly<GatewayConfig>;
  logger: Logger;
  metrics: GatewayMetrics;
}

/**
 * Step one, before the services: the Socket.IO server on the HTTP server, and what the
 * services need from it (the RoomEvents port). No socket is accepted until `registerRealtime`.
 */
export function createRealtime(
  deps: RealtimeDeps & { httpServer: HttpServer; redis: RedisClients; presenceStore: PresenceStore; isDraining(): boolean },
): Realtime {
  const { config, logger, metrics, redis } = deps;
  const { io, nsp } = createSocketServer({
    busAdapter: config.busAdapter,
    httpServer: deps.httpServer,
    pub: redis.pub,
    sub: redis.sub,
    redisPrefix: config.redisPrefix,
    corsOrigins: config.corsOrigins,
    logger,
    isDraining: deps.isDraining,
  });
  const channelPrefix = busChannelPrefix(config.redisPrefix);
  const mainChannelBack: (() => void)[] = [];
  const barrier = config.busAdapter === 'classic' ? CLASSIC_ADAPTER_BARRIER : createSubscriptionBarrier({
    nsp,
    tracker: redis.subscriptions,
    channelOf: (room) => roomBusChannel(channelPrefix, CHAT_NAMESPACE, room),
    roomOf: (channel) => roomOfBusChannel(channelPrefix, CHAT_NAMESPACE, channel),
    mainChannel: mainChannel(channelPrefix, CHAT_NAMESPACE),
    timeoutMs: SUBSCRIBE_BARRIER_TIMEOUT_MS,
    logger,
    onResync: (sockets) => metrics.busResyncs.inc(sockets),
    onMainChannelBack: () => {
      for (const listener of mainChannelBack) listener();
    },
  });
  const moves = createMembershipMoves(nsp);
  const publishGaps = trackPublishGaps({
    pub: redis.pub,
    onPublishFailed: redis.onPublishFailed,
    roomOfChannel: (channel) => roomOfBusChannel(channelPrefix, CHAT_NAMESPACE, channel),
    mainChannel: mainChannel(channelPrefix, CHAT_NAMESPACE),
    nsp,
    moves,
    logger,
    onResync: (rooms) => metrics.publishGapResyncs.inc(rooms),
  });
  // The worker looks at the user's rooms once the grace has passed (room-occupied / room-vacated).
  const occupancy = createOccupancyMarks(createOccupancyQueue(redis.commands, config.stateKeyPrefix), {
    graceMs: config.roomOccupancyGraceMs,
    logger,
  });
  const leases =
    config.maxSocketsPerUser > 0
      ? createSocketLeases({
          redis: redis.commands,
          prefix: config.stateKeyPrefix,
          places: config.maxSocketsPerUser,
          leaseMs: config.socketLeaseMs,
          logger,
          podName: config.podName,
        })
      : null;
  return {
    io,
    nsp,
    barrier,
    events: createRoomEventsAdapter(nsp, metrics, publishGaps, barrier, moves, (roomId) => occupancy.mark({ roomId })),
    presence: createPresenceTracker({
      store: deps.presenceStore,
      nsp,
      logger,
      podName: config.podName,
      onTransition: (userId) => occupancy.mark({ userId }),
    }),
    leases,
    occupancy,
    onMainChannelBack: (listener) => mainChannelBack.push(listener),
    moves,
  };
}

/**
 * Step two: presence, the socket places' renewal, the handshake, the socket events
 * (realtime/handlers/, wired in connection.ts) and the slow-consumer sweep. Returns what stops
 * the renewal and the sweep.
 */
export function registerRealtime(
  realtime: Realtime,
  deps: RealtimeDeps & { services: Services; tokenExpiryMaxStepMs?: number | undefined },
): { stop(): void } {
  const { config, logger, metrics, services } = deps;
  const { nsp, presence, leases, barrier, moves } = realtime;
  presence.start();
  nsp.on('room-lifetime', (roomId) => services.roomService.forgetCached(roomId));
  const memberships = createMembershipReconciler({ nsp, moves, membershipsOf: (userIds) => services.roomService.membershipsOf(userIds), logger });
  realtime.onMainChannelBack(() => memberships.checkAll());
  leases?.start();
  nsp.use(
    createHandshakeMiddleware({
      auth: services.userAuth,
      logger,
      onRefused: (code) => metrics.handshakeFailures.inc({ code }),
      ...(leases ? { leases } : {}),
      ...(services.handshakes ? { handshakes: services.handshakes } : {}),
      barrier,
      memberships,
    }),
  );
  nsp.on(
    'connection',
    createConnectionHandler({
      roomService: services.roomService,
      messageService: services.messageService,
      failures: services.failedEvents,
      ...(leases ? { leases } : {}),
      ...(deps.tokenExpiryMaxStepMs === undefined ? {} : { tokenExpiryMaxStepMs: deps.tokenExpiryMaxStepMs }),
      presence,
      barrier,
      memberships,
      logger,
      metrics,
    }),
  );
  const sweep = startSlowConsumerSweep({
    nsp,
    maxQueuedBytes: config.socketMaxQueuedBytes,
    intervalMs: SLOW_CONSUMER_SWEEP_MS,
    onDropped: (socket, queued) => {
      metrics.slowConsumersDropped.inc();
      logger.warn({ userId: socket.data.user.id, socketId: socket.id, queued }, 'slow consumer dropped');
    },
  });
  return {
    stop() {
      sweep.stop();
      leases?.stop();
    },
  };
}
