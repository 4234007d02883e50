import { parseTyping, roomChannel, userChannel } from '@chat/protocol';
import { isInRoom } from '../socket-rooms.ts';
import { TypingThrottle } from '../typing-throttle.ts';
import type { ChatSocket } from '../types.ts';

/** `typing` (PROTOCOL §5): best-effort, answered `{}` whatever happens to it. */
export function typingHandler(socket: ChatSocket) {
  const throttle = new TypingThrottle();
  return async (payload: unknown): Promise<Record<string, never>> => {
    const typing = parseTyping(payload);
    if (!typing || !isInRoom(socket, typing.roomId)) return {};
    // The `false` that ends a `true` the room has seen is never throttled: dropping it would
    // leave "typing…" on the others' screens (a burst of keystrokes, then Enter). It costs
    // no more than the `true` before it, so the flood bound holds.
    const endsTyping = !typing.isTyping && socket.data.typingRooms.has(typing.roomId);
    if (!endsTyping && !throttle.take()) return {};
    if (typing.isTyping) socket.data.typingRooms.add(typing.roomId);
    else socket.data.typingRooms.delete(typing.roomId);
    emitTypingIndicator(socket, typing.roomId, typing.isTyping);
    return {};
  };
}

/** On disconnect: ends every "typing…" the socket left on the others' screens. */
export function endTyping(socket: ChatSocket): void {
  for (const roomId of socket.data.typingRooms) emitTypingIndicator(socket, roomId, false);
  socket.data.typingRooms.clear();
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
