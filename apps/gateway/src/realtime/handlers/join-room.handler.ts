import { roomChannel } from '@chat/protocol';
import type { RoomService } from '../../services/room.service.ts';
import { isInRoom } from '../socket-rooms.ts';
import type { ChatSocket } from '../types.ts';
import { membershipChangeHandler } from './membership-change.ts';

/** `join-room` (PROTOCOL §2) → `room-joined` to the caller and the user's other devices. */
export function joinRoomHandler(socket: ChatSocket, roomService: RoomService) {
  return membershipChangeHandler(
    socket,
    'room-joined',
    (payload) => roomService.join(socket.data.user, payload, (roomId) => isInRoom(socket, roomId)),
    // The adapter has already put this pod's sockets in; make sure of the caller's own.
    (roomId) => socket.join(roomChannel(roomId)),
  );
}
