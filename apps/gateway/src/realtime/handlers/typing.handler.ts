import { parseTyping, roomChannel, userChannel } from '@chat/protocol';
import { isInRoom } from '../socket-rooms.ts';
import { TypingThrottle } from '../typing-throttle.ts';
import type { ChatSocket } from '../types.ts';

/** A socket's typing state, made at its first `typing` (most sockets never send one). */
export interface TypingState {
  throttle: TypingThrottle;
  /** Rooms where this socket last said `isTyping: true`, ended on disconnect. */
  rooms: Set<string>;
}

/** `typing` (PROTOCOL §5): best-effort, answered `{}` whatever happens to it. */
export async function typingHandler(socket: ChatSocket, payload: unknown): Promise<Record<string, never>> {
  const typing = parseTyping(payload);
  if (!typing || !isInRoom(socket, typing.roomId)) return {};
  const state = (socket.data.typing ??= { throttle: new TypingThrottle(), rooms: new Set() });
  // The `false` that ends a `true` the room has seen is never throttled: dropping it would
  // leave "typing…" on the others' screens (a burst of keystrokes, then Enter). It costs
  // no more than the `true` before it, so the flood bound holds.
  const endsTyping = !typing.isTyping && state.rooms.has(typing.roomId);
  if (!endsTyping && !state.throttle.take()) return {};
  if (typing.isTyping) state.rooms.add(typing.roomId);
  else state.rooms.delete(typing.roomId);
  emitTypingIndicator(socket, typing.roomId, typing.isTyping);
  return {};
}

/** On disconnect: ends every "typing…" the socket left on the others' screens. */
export function endTyping(socket: ChatSocket): void {
  const rooms = socket.data.typing?.rooms;
  if (!rooms) return;
  for (const roomId of rooms) emitTypingIndicator(socket, roomId, false);
  rooms.clear();
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
