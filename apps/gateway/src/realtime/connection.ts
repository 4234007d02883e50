import type { Logger } from 'pino';
import type { GatewayMetrics } from '../metrics.ts';
import type { MessageService } from '../services/message.service.ts';
import type { RoomService } from '../services/room.service.ts';
import { setReading } from './engine-socket.ts';
import { EventSlots } from './event-slots.ts';
import { guardedHandler, unknownEventHandler, type HandlerContext } from './guarded-handler.ts';
import { keepMembershipOrder } from './membership-order.ts';
import { joinRoomHandler } from './handlers/join-room.handler.ts';
import { leaveRoomHandler } from './handlers/leave-room.handler.ts';
import { sendMessageHandler } from './handlers/send-message.handler.ts';
import { endTyping, typingHandler } from './handlers/typing.handler.ts';
import type { SocketLeases } from '../infrastructure/socket-leases.ts';
import type { FailedEventBudget } from './failed-event-budget.ts';
import type { MembershipReconciler } from './membership-reconciler.ts';
import type { PresenceTracker } from './presence-tracker.ts';
import type { SubscriptionBarrier } from './subscription-barrier.ts';
import { createTokenExpiry } from './token-expiry.ts';
import type { ChatSocket } from './types.ts';
import { TypingThrottle } from './typing-throttle.ts';

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
  /** Checks a user's sockets when another pod moved them while a join or leave of theirs ran here. */
  memberships: Pick<MembershipReconciler, 'watchChange'>;
  logger: Logger;
  metrics: GatewayMetrics;
}

/** A socket's events handled at once; the rest wait in order (event-slots.ts). */
const CONCURRENT_EVENTS = 8;
/** Waiting events (each at most a 16 KiB frame) past which the socket is not read for a while. */
const EVENT_BACKLOG = 64;

/**
 * The `connection` listener, which wires each authenticated socket: its events (one handler
 * each), its token's end, its close. Everything here is made once per pod and shared by every
 * socket — listeners receive their socket as `this` — so an idle connection holds no closure,
 * timer or per-socket object of the gateway's beyond `socket.data` (issue 17: memory per idle
 * connection). The handshake has already put the socket into its rooms (handshake.ts).
 */
export function createConnectionHandler(deps: ConnectionDeps): (socket: ChatSocket) => void {
  const { presence, logger, metrics } = deps;
  const context: HandlerContext = {
    logger,
    metrics,
    slots: new EventSlots<ChatSocket>(CONCURRENT_EVENTS, EVENT_BACKLOG, setReading),
    failures: deps.failures,
  };
  const onJoinRoom = guardedHandler('join-room', context, joinRoomHandler(deps.roomService, deps.barrier, deps.memberships), { ordered: true });
  const onLeaveRoom = guardedHandler('leave-room', context, leaveRoomHandler(deps.roomService, deps.memberships), { ordered: true });
  const onSendMessage = guardedHandler('send-message', context, sendMessageHandler(deps.messageService));
  // Typing budgets per (user, room) on this pod, shared by the user's sockets (typing-throttle.ts).
  const typing = new TypingThrottle();
  const onTyping = guardedHandler('typing', context, typingHandler(typing));
  const onUnknownEvent = unknownEventHandler(context);
  const expiry = createTokenExpiry(deps.tokenExpiryMaxStepMs === undefined ? {} : { maxStepMs: deps.tokenExpiryMaxStepMs });

  // Before Socket.IO takes the socket out of its rooms: presence and typing still know them.
  function onDisconnecting(this: ChatSocket, reason: string) {
    presence.onDisconnecting(this);
    metrics.connectedSockets.dec();
    metrics.disconnections.inc({ reason });
    expiry.forget(this);
    void deps.leases?.release(this.data.user.id, this.id);
    endTyping(typing, this);
  }
  // A socket error (an oversized frame, a parse failure) must never reach the process.
  function onError(this: ChatSocket, error: Error) {
    logger.debug({ err: error, socketId: this.id }, 'socket error');
  }

  return (socket) => {
    metrics.connections.inc();
    metrics.connectedSockets.inc();
    presence.onConnect(socket);
    socket.on('disconnecting', onDisconnecting);
    socket.on('join-room', onJoinRoom);
    socket.on('leave-room', onLeaveRoom);
    socket.on('send-message', onSendMessage);
    socket.on('typing', onTyping);
    socket.onAny(onUnknownEvent);
    socket.onAnyOutgoing(keepMembershipOrder);
    socket.on('error', onError);
    expiry.watch(socket);
  };
}
