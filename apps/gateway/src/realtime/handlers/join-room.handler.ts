import { roomChannel } from '@chat/protocol';
import type { RoomService } from '../../services/room.service.ts';
import { SocketMembership } from '../socket-rooms.ts';
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
      const { answer, repeat } = await roomService.join(socket.data.user, payload, new SocketMembership(socket));
      // A repeat join moved nobody: the user's other devices are in the room already.
      return { answer, toOtherDevices: !repeat };
    },
    // The service has put the caller's socket in, the pod hearing the room already; for a
    // repeat join the room's subscription may still be being confirmed (a mirrored join).
    async (socket, roomId) => {
      const room = roomChannel(roomId);
      await socket.join(room);
      await barrier.settle(socket.id, [room]);
    },
  );
}
