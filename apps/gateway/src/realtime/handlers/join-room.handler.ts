import { roomChannel } from '@chat/protocol';
import type { RoomService } from '../../services/room.service.ts';
import type { MembershipReconciler } from '../membership-reconciler.ts';
import { SocketMembership } from '../socket-rooms.ts';
import type { SubscriptionBarrier } from '../subscription-barrier.ts';
import { membershipChangeHandler } from './membership-change.ts';

/**
 * `join-room` (PROTOCOL §2) → `room-joined` to the caller and the user's other devices, once
 * this pod's subscription to the room is confirmed (subscription-barrier.ts): the ack promises
 * that what is sent to the room from now on arrives.
 */
export function joinRoomHandler(roomService: RoomService, barrier: SubscriptionBarrier, memberships: Pick<MembershipReconciler, 'watchChange'>) {
  return membershipChangeHandler(
    'room-joined',
    async (socket, payload) => {
      const { answer, repeat, member } = await roomService.join(socket.data.user, payload, new SocketMembership(socket));
      return {
        answer,
        // A repeat join moved nobody: the user's other devices are in the room already.
        toOtherDevices: !repeat,
        // A repeat join whose read found the user gone (a leave on another device committed
        // first; its room-left may have reached this socket already): the answer is not the
        // truth, room-left is, as of the same change number. A leave committed after the join
        // is ordered by its own number (membership-order.ts).
        followWith: member ? undefined : { roomId: answer.roomId, changeSeq: answer.lastChangeSeq },
      };
    },
    // The service has put the caller's socket in, the pod hearing the room already; for a
    // repeat join the room's subscription may still be being confirmed (a mirrored join). Not
    // put in again here: a socket out of the room by now was taken out by a leave of another
    // device committed during the repeat join's read (moved at once on this pod, from the bus
    // on another), and joining it again would leave it hearing a room its user is not in, on a
    // pod that does not check its own moves (membership-reconciler.ts), until the next move.
    async (socket, roomId) => {
      const room = roomChannel(roomId);
      if (socket.rooms.has(room)) await barrier.settle(socket.id, [room]);
    },
    memberships,
  );
}
