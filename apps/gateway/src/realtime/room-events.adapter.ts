import {
  roomChannel,
  userChannel,
  type MessageDeletedPayload,
  type NewMessagePayload,
  type RoomLeftPayload,
  type RoomLifetimeChangedPayload,
  type UserJoinedPayload,
  type UserLeftPayload,
} from '@chat/protocol';
import type { GatewayMetrics } from '../metrics.ts';
import type { RoomEvents } from '../services/room-events.ts';
import type { MembershipMoves } from './membership-moves.ts';
import type { PublishGaps } from './publish-gaps.ts';
import type { SubscriptionBarrier } from './subscription-barrier.ts';
import type { ChatNamespace } from './types.ts';

/**
 * RoomEvents over Socket.IO: every call goes through the Redis adapter, so it reaches the
 * sockets of every pod. Membership moves all of a user's sockets via their `user:<id>` room, and
 * the pods holding them check the move against the database (membership-reconciler.ts).
 */
export function createRoomEventsAdapter(
  nsp: ChatNamespace,
  metrics: GatewayMetrics,
  gaps: PublishGaps,
  barrier: SubscriptionBarrier,
  moves: MembershipMoves,
  /** A membership changed: the room's occupancy may have (webhooks' room-occupied / room-vacated). */
  membershipChanged: (roomId: string) => void = () => undefined,
): RoomEvents {
  const counted = <T extends { roomId: string }>(event: string, send: (payload: T) => void) => {
    const sent = metrics.broadcasts.labels({ event });
    return (payload: T) => {
      sent.inc();
      send(payload);
      gaps.roomBroadcast(payload.roomId);
    };
  };
  return {
    hearRoomBeforeJoin: (roomId) => barrier.hold(roomChannel(roomId)),
    addUserToRoom: (userId, roomId) => {
      nsp.in(userChannel(userId)).socketsJoin(roomChannel(roomId));
      moves.announce(userId);
      gaps.membershipMoved(userId);
    },
    removeUserFromRoom: (userId, roomId) => {
      nsp.in(userChannel(userId)).socketsLeave(roomChannel(roomId));
      moves.announce(userId);
      gaps.membershipMoved(userId);
    },
    userJoined: counted('user-joined', (payload: UserJoinedPayload) => {
      nsp.to(roomChannel(payload.roomId)).except(userChannel(payload.userId)).emit('user-joined', payload);
      membershipChanged(payload.roomId);
    }),
    userLeft: counted('user-left', (payload: UserLeftPayload) => {
      nsp.to(roomChannel(payload.roomId)).except(userChannel(payload.userId)).emit('user-left', payload);
      membershipChanged(payload.roomId);
    }),
    newMessage: counted('new-message', (payload: NewMessagePayload) =>
      nsp.to(roomChannel(payload.roomId)).emit('new-message', payload),
    ),
    messageDeleted: counted('message-deleted', (payload: MessageDeletedPayload) =>
      nsp.to(roomChannel(payload.roomId)).emit('message-deleted', payload),
    ),
    roomLeftToUser: (userId: string, payload: RoomLeftPayload) => {
      nsp.to(userChannel(userId)).emit('room-left', payload);
    },
    disconnectUser: (userId) => {
      nsp.in(userChannel(userId)).disconnectSockets(true);
    },
    // The other pods drop the room from their RoomCache (register-realtime.ts listens); the
    // room's members hear the new expiry.
    roomLifetimeChanged: counted('room-lifetime-changed', (payload: RoomLifetimeChangedPayload) => {
      nsp.serverSideEmit('room-lifetime', payload.roomId);
      nsp.to(roomChannel(payload.roomId)).emit('room-lifetime-changed', payload);
    }),
  };
}
