import { roomChannel } from '@chat/protocol';
import type { RoomService } from '../../services/room.service.ts';
import type { MembershipReconciler } from '../membership-reconciler.ts';
import { membershipChangeHandler } from './membership-change.ts';
import { forgetRoom } from './typing.handler.ts';

/** `leave-room` (PROTOCOL §3) → `room-left` to the caller and the user's other devices. */
export function leaveRoomHandler(roomService: RoomService, memberships: Pick<MembershipReconciler, 'watchChange'>) {
  return membershipChangeHandler(
    'room-left',
    async (socket, payload) => ({ answer: await roomService.leave(socket.data.user, payload), toOtherDevices: true }),
    async (socket, roomId) => {
      await socket.leave(roomChannel(roomId));
      forgetRoom(socket, roomId);
    },
    memberships,
  );
}
