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
    async (socket, payload) => {
      const { answer, repeat } = await roomService.join(socket.data.user, payload, (roomId) => isInRoom(socket, roomId));
      // A repeat join moved nobody: the user's other devices are in the room already.
      return { answer, toOtherDevices: !repeat };
    },
    // The adapter has already put this pod's sockets in; make sure of the caller's own. For a
    // repeat join both are no-ops unless the room's subscription is still being confirmed.
    async (socket, roomId) => {
      const room = roomChannel(roomId);
      await socket.join(room);
      await barrier.settle(socket.id, [room]);
    },
  );
}
