import { userChannel, type RoomJoinedPayload, type RoomLeftPayload } from '@chat/protocol';
import type { SocketEventHandler } from '../guarded-handler.ts';
import type { ChatSocket } from '../types.ts';

type MembershipAnswers = { 'room-joined': RoomJoinedPayload; 'room-left': RoomLeftPayload };

/**
 * What join-room and leave-room share: the service changes the membership (and moves the
 * user's sockets on every pod), this socket is moved for sure, then the caller and the user's
 * other devices hear the answer event — without it those devices would just change silently.
 */
export function membershipChangeHandler<E extends keyof MembershipAnswers>(
  answer: E,
  change: (socket: ChatSocket, payload: unknown) => Promise<MembershipAnswers[E]>,
  moveSocket: (socket: ChatSocket, roomId: string) => Promise<void> | void,
): SocketEventHandler<MembershipAnswers[E]> {
  return async (socket, payload) => {
    const result = await change(socket, payload);
    await moveSocket(socket, result.roomId);
    const emit = (target: { emit: ChatSocket['emit'] }) =>
      (target.emit as (event: E, payload: MembershipAnswers[E]) => void)(answer, result);
    emit(socket);
    emit(socket.to(userChannel(socket.data.user.id)));
    return result;
  };
}
