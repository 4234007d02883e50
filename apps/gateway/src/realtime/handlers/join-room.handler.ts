import { roomChannel } from '@chat/protocol';
import type { RoomService } from '../../services/room.service.ts';
import { watchMembershipAnswers } from '../membership-answers.ts';
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
      // A repeat join writes nothing, so a leave of the user on another device may commit while
      // it reads, and that leave's `room-left` (sent to all the user's devices from the leave's
      // pod) may reach this socket before the answer does: the client would then believe itself
      // a member of a room it is not in. Watched from before the read, so that whatever went out
      // last is known when the answer goes.
      const watch = watchMembershipAnswers(socket);
      try {
        const { answer, repeat, member } = await roomService.join(socket.data.user, payload, new SocketMembership(socket));
        return {
          answer,
          // A repeat join moved nobody: the user's other devices are in the room already.
          toOtherDevices: !repeat,
          followWithRoomLeft: () => {
            watch.stop();
            if (!repeat) return false;
            // The last word the socket heard while the join ran decides (a later join's
            // room-joined, or the leave's room-left); when it heard none, the read does: a
            // leave committed before it whose room-left came earlier still, or is on its way
            // (then heard twice, which changes nothing).
            const heard = watch.last(answer.roomId);
            return heard === undefined ? !member : heard === 'room-left';
          },
        };
      } catch (error) {
        watch.stop();
        throw error;
      }
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
  );
}
