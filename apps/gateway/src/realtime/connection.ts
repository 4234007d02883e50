import type { Logger } from 'pino';
import { parseTyping, roomChannel, userChannel } from '@chat/protocol';
import type { MessageService } from '../services/message.service.ts';
import type { RoomService } from '../services/room.service.ts';
import { setReading } from './engine-socket.ts';
import { EventSlots } from './event-slots.ts';
import { guardedHandler } from './respond.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { PresenceTracker } from './presence-tracker.ts';
import { TypingThrottle } from './typing-throttle.ts';
import type { ChatSocket } from './types.ts';

export interface ConnectionDeps {
  roomService: RoomService;
  messageService: MessageService;
  presence: PresenceTracker;
  logger: Logger;
  metrics: GatewayMetrics;
}

/** A socket's events handled at once; the rest wait in order (event-slots.ts). */
const CONCURRENT_EVENTS = 8;
/** Waiting events (each at most a 16 KiB frame) past which the socket is not read for a while. */
const EVENT_BACKLOG = 64;

// setTimeout holds at most a signed 32-bit delay.
const MAX_TIMER_MS = 2_147_483_647;

/** Wires one authenticated socket: its rooms, its events, its token's end. */
export function handleConnection(socket: ChatSocket, deps: ConnectionDeps): void {
  const { roomService, messageService, presence, logger, metrics } = deps;
  const context = { logger, metrics, slots: new EventSlots(CONCURRENT_EVENTS, EVENT_BACKLOG, (reading) => setReading(socket, reading)) };
  const user = socket.data.user;
  metrics.connections.inc();
  metrics.connectedSockets.inc();
  void socket.join([userChannel(user.id), ...socket.data.initialRoomIds.map(roomChannel)]);
  presence.onConnect(socket);
  socket.on('disconnecting', () => presence.onDisconnecting(socket));

  const hint = {
    isInRoom: (roomId: string) => socket.rooms.has(roomChannel(roomId)),
    enterRoom: (roomId: string) => void socket.join(roomChannel(roomId)),
  };

  socket.on(
    'join-room',
    guardedHandler(socket, 'join-room', context, async (payload) => {
      const joined = await roomService.join(user, payload, hint.isInRoom);
      // The adapter has already put this pod's sockets in; make sure of the caller's own.
      await socket.join(roomChannel(joined.roomId));
      socket.emit('room-joined', joined);
      // The user's other devices were moved in too (on every pod): let them know.
      socket.to(userChannel(user.id)).emit('room-joined', joined);
      return joined;
    }),
  );

  socket.on(
    'leave-room',
    guardedHandler(socket, 'leave-room', context, async (payload) => {
      const left = await roomService.leave(user, payload);
      await socket.leave(roomChannel(left.roomId));
      socket.data.typingRooms.delete(left.roomId);
      socket.emit('room-left', left);
      // The user's other devices were taken out too: without this they would just fall silent.
      socket.to(userChannel(user.id)).emit('room-left', left);
      return left;
    }),
  );

  socket.on(
    'send-message',
    guardedHandler(socket, 'send-message', context, (payload) => messageService.send(user, payload, hint)),
  );

  const throttle = new TypingThrottle();
  socket.on(
    'typing',
    guardedHandler(socket, 'typing', context, async (payload) => {
      const typing = parseTyping(payload);
      if (!typing || !socket.rooms.has(roomChannel(typing.roomId))) return {};
      // The `false` that ends a `true` the room has seen is never throttled: dropping it would
      // leave "typing…" on the others' screens (a burst of keystrokes, then Enter). It costs
      // no more than the `true` before it, so the flood bound holds.
      const endsTyping = !typing.isTyping && socket.data.typingRooms.has(typing.roomId);
      if (!endsTyping && !throttle.take()) return {};
      if (typing.isTyping) socket.data.typingRooms.add(typing.roomId);
      else socket.data.typingRooms.delete(typing.roomId);
      // Never to the sender: not to this socket, nor to the same user's other devices.
      socket.to(roomChannel(typing.roomId)).except(userChannel(user.id)).emit('typing-indicator', {
        roomId: typing.roomId,
        userId: user.id,
        nicknameMask: user.nicknameMask,
        isTyping: typing.isTyping,
      });
      return {};
    }),
  );

  const untilExpiry = user.tokenExpiresAtMs - Date.now();
  const expiryTimer =
    untilExpiry < MAX_TIMER_MS
      ? setTimeout(() => {
          socket.emit('token-expired', {});
          socket.disconnect(true);
        }, Math.max(0, untilExpiry))
      : undefined;
  expiryTimer?.unref();

  socket.on('disconnect', (reason) => {
    metrics.connectedSockets.dec();
    metrics.disconnections.inc({ reason });
    if (expiryTimer) clearTimeout(expiryTimer);
    for (const roomId of socket.data.typingRooms) {
      socket.to(roomChannel(roomId)).except(userChannel(user.id)).emit('typing-indicator', {
        roomId,
        userId: user.id,
        nicknameMask: user.nicknameMask,
        isTyping: false,
      });
    }
    socket.data.typingRooms.clear();
  });

  // A socket error (an oversized frame, a parse failure) must never reach the process.
  socket.on('error', (error) => logger.debug({ err: error, socketId: socket.id }, 'socket error'));
}
