import type { Logger } from 'pino';
import type { ClientEventName } from '@chat/protocol';
import type { GatewayMetrics } from '../metrics.ts';
import type { MessageService } from '../services/message.service.ts';
import type { RoomService } from '../services/room.service.ts';
import { setReading } from './engine-socket.ts';
import { EventSlots } from './event-slots.ts';
import { guardedHandler } from './guarded-handler.ts';
import { joinRoomHandler } from './handlers/join-room.handler.ts';
import { leaveRoomHandler } from './handlers/leave-room.handler.ts';
import { sendMessageHandler } from './handlers/send-message.handler.ts';
import { endTyping, typingHandler } from './handlers/typing.handler.ts';
import type { SocketLeases } from '../infrastructure/socket-leases.ts';
import type { FailedEventBudget } from './failed-event-budget.ts';
import type { PresenceTracker } from './presence-tracker.ts';
import type { SubscriptionBarrier } from './subscription-barrier.ts';
import { disconnectAtTokenExpiry } from './token-expiry.ts';
import type { ChatSocket } from './types.ts';

export interface ConnectionDeps {
  roomService: RoomService;
  /** What the user's events refused after a lookup cost them (failed-event-budget.ts). */
  failures: FailedEventBudget;
  /** The user's socket places (handshake.ts); the place this socket holds is given back as it closes. */
  leases?: SocketLeases;
  /** Shorter steps for the token-expiry timer (tests); token-expiry.ts. */
  tokenExpiryMaxStepMs?: number;
  messageService: MessageService;
  presence: PresenceTracker;
  barrier: SubscriptionBarrier;
  logger: Logger;
  metrics: GatewayMetrics;
}

/** A socket's events handled at once; the rest wait in order (event-slots.ts). */
const CONCURRENT_EVENTS = 8;
/** Waiting events (each at most a 16 KiB frame) past which the socket is not read for a while. */
const EVENT_BACKLOG = 64;

/** Wires one authenticated socket: its rooms, its events (one handler each), its token's end. */
export function handleConnection(socket: ChatSocket, deps: ConnectionDeps): void {
  const { roomService, messageService, presence, logger, metrics } = deps;
  const context = {
    logger,
    metrics,
    slots: new EventSlots(CONCURRENT_EVENTS, EVENT_BACKLOG, (reading) => setReading(socket, reading)),
    failures: deps.failures,
  };
  const guard = <T>(event: ClientEventName, handle: (payload: unknown) => Promise<T>) =>
    guardedHandler(socket, event, context, handle);
  const user = socket.data.user;
  metrics.connections.inc();
  metrics.connectedSockets.inc();
  // The handshake has put the socket into its rooms (handshake.ts).
  presence.onConnect(socket);
  socket.on('disconnecting', () => presence.onDisconnecting(socket));

  socket.on('join-room', guard('join-room', joinRoomHandler(socket, roomService, deps.barrier)));
  socket.on('leave-room', guard('leave-room', leaveRoomHandler(socket, roomService)));
  socket.on('send-message', guard('send-message', sendMessageHandler(socket, messageService)));
  socket.on('typing', guard('typing', typingHandler(socket)));

  const cancelExpiry = disconnectAtTokenExpiry(socket, deps.tokenExpiryMaxStepMs === undefined ? {} : { maxStepMs: deps.tokenExpiryMaxStepMs });
  socket.on('disconnect', (reason) => {
    metrics.connectedSockets.dec();
    metrics.disconnections.inc({ reason });
    cancelExpiry();
    void deps.leases?.release(user.id, socket.id);
    endTyping(socket);
  });

  // A socket error (an oversized frame, a parse failure) must never reach the process.
  socket.on('error', (error) => logger.debug({ err: error, socketId: socket.id }, 'socket error'));
}
