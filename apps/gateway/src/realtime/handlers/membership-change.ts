import { userChannel, type RoomJoinedPayload, type RoomLeftPayload } from '@chat/protocol';
import type { SocketEventHandler } from '../guarded-handler.ts';
import type { ChatSocket } from '../types.ts';

type MembershipAnswers = { 'room-joined': RoomJoinedPayload; 'room-left': RoomLeftPayload };

/** What the service answers: the event's payload, and whether the user's other devices hear it too. */
export interface MembershipOutcome<T> {
  answer: T;
  /** False when nothing moved (a repeat join-room): only the caller is answered, nothing is published. */
  toOtherDevices: boolean;
  /**
   * Asked once, when the caller's socket has been moved and is about to be answered: true when
   * the answer must be followed by `room-left` to the caller (a repeat join that a leave on
   * another device overtook, join-room.handler.ts).
   */
  followWithRoomLeft?: () => boolean;
}

/**
 * What join-room and leave-room share: the service changes the membership (and moves the
 * user's sockets on every pod), this socket is moved for sure, then the caller and the user's
 * other devices hear the answer event — without it those devices would just change silently.
 */
export function membershipChangeHandler<E extends keyof MembershipAnswers>(
  answer: E,
  change: (socket: ChatSocket, payload: unknown) => Promise<MembershipOutcome<MembershipAnswers[E]>>,
  moveSocket: (socket: ChatSocket, roomId: string) => Promise<void> | void,
): SocketEventHandler<MembershipAnswers[E]> {
  return async (socket, payload) => {
    const { answer: result, toOtherDevices, followWithRoomLeft } = await change(socket, payload);
    let roomLeftFollows = false;
    try {
      await moveSocket(socket, result.roomId);
    } finally {
      // Decided with nothing awaited before the answer goes out.
      roomLeftFollows = followWithRoomLeft?.() ?? false;
    }
    const emit = (target: { emit: ChatSocket['emit'] }) =>
      (target.emit as (event: E, payload: MembershipAnswers[E]) => void)(answer, result);
    emit(socket);
    if (toOtherDevices) emit(socket.to(userChannel(socket.data.user.id)));
    // Before the ack, so a client has heard it by the time it reads the answer.
    if (roomLeftFollows) socket.emit('room-left', { roomId: result.roomId });
    return result;
  };
}
