import { roomChannel } from '@chat/protocol';
import type { RoomService } from '../../services/room.service.ts';
import type { ChatSocket } from '../types.ts';
import { membershipChangeHandler } from './membership-change.ts';

/** `leave-room` (PROTOCOL §3) → `room-left` to the caller and the user's other devices. */
export function leaveRoomHandler(socket: ChatSocket, roomService: RoomService) {
  return membershipChangeHandler(
    socket,
    'room-left',
    (payload) => roomService.leave(socket.data.user, payload),
    async (roomId) => {
      await socket.leave(roomChannel(roomId));
      socket.data.typingRooms.delete(roomId);
    },
  );
}
