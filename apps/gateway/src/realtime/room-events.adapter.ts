import { roomChannel, userChannel } from '@chat/protocol';
import type { RoomEvents } from '../services/room-events.ts';
import type { ChatNamespace } from './types.ts';

/**
 * RoomEvents over Socket.IO: every call goes through the Redis adapter, so it reaches the
 * sockets of every pod. Membership moves all of a user's sockets via their `user:<id>` room.
 */
export function createRoomEventsAdapter(nsp: ChatNamespace): RoomEvents {
  return {
    addUserToRoom: (userId, roomId) => nsp.in(userChannel(userId)).socketsJoin(roomChannel(roomId)),
    removeUserFromRoom: (userId, roomId) =>
      nsp.in(userChannel(userId)).socketsLeave(roomChannel(roomId)),
    userJoined: (payload) =>
      nsp.to(roomChannel(payload.roomId)).except(userChannel(payload.userId)).emit('user-joined', payload),
    userLeft: (payload) =>
      nsp.to(roomChannel(payload.roomId)).except(userChannel(payload.userId)).emit('user-left', payload),
    newMessage: (payload) => nsp.to(roomChannel(payload.roomId)).emit('new-message', payload),
    messageDeleted: (payload) => nsp.to(roomChannel(payload.roomId)).emit('message-deleted', payload),
  };
}
