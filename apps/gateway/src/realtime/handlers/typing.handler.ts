import { parseTyping, roomChannel, userChannel } from '@chat/protocol';
import { isInRoom } from '../socket-rooms.ts';
import type { TypingThrottle } from '../typing-throttle.ts';
import type { ChatSocket } from '../types.ts';

/**
 * The rooms where a socket's last `typing` was `isTyping: true`, ended on disconnect. Made at
 * the socket's first `true` and dropped as soon as it is empty: a socket that is not typing
 * anywhere holds nothing (the budget is its user's, in the pod's TypingThrottle).
 */
export type TypingRooms = Set<string>;

/**
 * `typing` (PROTOCOL §5): best-effort, answered `{}` whatever happens to it here (only a user
 * whose failed events are spent is refused, by guarded-handler.ts, as for any event). The budget is the
 * user's in the room, shared by all the user's sockets on this pod (typing-throttle.ts says
 * why the `false` that ends a `true` is always let through).
 */
export function typingHandler(throttle: TypingThrottle) {
  return async (socket: ChatSocket, payload: unknown): Promise<Record<string, never>> => {
    const typing = parseTyping(payload);
    if (!typing || !isInRoom(socket, typing.roomId)) return {};
    // What this socket said is remembered even when the room does not hear it: its disconnect
    // must end a `true` of its own that the room heard.
    if (typing.isTyping) (socket.data.typing ??= new Set()).add(typing.roomId);
    else forgetRoom(socket, typing.roomId);
    if (throttle.admit(socket.data.user.id, typing.roomId, typing.isTyping)) {
      emitTypingIndicator(socket, typing.roomId, typing.isTyping);
    }
    return {};
  };
}

/** The socket left the room: a disconnect no longer ends a "typing…" there. */
export function forgetRoom(socket: ChatSocket, roomId: string): void {
  const rooms = socket.data.typing;
  // Emptied, not deleted: a `delete` would turn `socket.data` into a slow dictionary object.
  if (rooms?.delete(roomId) && rooms.size === 0) socket.data.typing = undefined;
}

/**
 * On disconnect: ends the "typing…" the socket left on the others' screens. Through the user's
 * budget, so a user cannot flood a room by reconnecting either; the throttle lets through
 * every `false` that ends a `true` the room heard.
 */
export function endTyping(throttle: TypingThrottle, socket: ChatSocket): void {
  const rooms = socket.data.typing;
  if (!rooms) return;
  socket.data.typing = undefined;
  for (const roomId of rooms) {
    if (throttle.admit(socket.data.user.id, roomId, false)) emitTypingIndicator(socket, roomId, false);
  }
}

function emitTypingIndicator(socket: ChatSocket, roomId: string, isTyping: boolean): void {
  const { user } = socket.data;
  // Never to the sender: not to this socket, nor to the same user's other devices.
  socket.to(roomChannel(roomId)).except(userChannel(user.id)).emit('typing-indicator', {
    roomId,
    userId: user.id,
    nicknameMask: user.nicknameMask,
    isTyping,
  });
}
