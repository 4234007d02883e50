import { roomChannel } from '@chat/protocol';
import type { RoomService } from '../../services/room.service.ts';
import { isInRoom } from '../socket-rooms.ts';
import type { SubscriptionBarrier } from '../subscription-barrier.ts';
import { membershipChangeHandler } from './membership-change.ts';

/**
 * `join-room` (PROTOCOL §2) → `room-joined` to the caller and the user's other devices, once
 * this pod's subscription to the room is confirmed (subscription-barrier.ts): the ack promises
 * that what is sent to the room from now on arrives.
 */
export function joinRoomHandler(roomService: RoomService, barrier: SubscriptionBarrier) {
  return membershipChangeHandler(
    'room-joined',
    (socket, payload) => roomService.join(socket.data.user, payload, (roomId) => isInRoom(socket, roomId)),
    // The adapter has already put this pod's sockets in; make sure of the caller's own.
    async (socket, roomId) => {
      const room = roomChannel(roomId);
      await socket.join(room);
      await barrier.settle(socket.id, [room]);
    },
  );
}
