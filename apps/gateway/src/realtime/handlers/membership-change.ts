import { userChannel, type RoomJoinedPayload, type RoomLeftPayload } from '@chat/protocol';
import type { SocketEventHandler } from '../guarded-handler.ts';
import type { MembershipReconciler } from '../membership-reconciler.ts';
import type { ChatSocket } from '../types.ts';

type MembershipAnswers = { 'room-joined': RoomJoinedPayload; 'room-left': RoomLeftPayload };

/** What the service answers: the event's payload, and whether the user's other devices hear it too. */
export interface MembershipOutcome<T> {
  answer: T;
  /** False when nothing moved (a repeat join-room): only the caller is answered, nothing is published. */
  toOtherDevices: boolean;
  /** A `room-left` the caller hears right after the answer (a repeat join that a leave overtook, join-room.handler.ts). */
  followWith?: RoomLeftPayload | undefined;
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
  memberships: Pick<MembershipReconciler, 'watchChange'>,
): SocketEventHandler<MembershipAnswers[E]> {
  return async (socket, payload) => {
    const moved = memberships.watchChange(socket.data.user.id);
    let outcome: MembershipOutcome<MembershipAnswers[E]>;
    try {
      outcome = await change(socket, payload);
      await moveSocket(socket, outcome.answer.roomId);
    } finally {
      moved();
    }
    const { answer: result, toOtherDevices, followWith } = outcome;
    const emit = (target: { emit: ChatSocket['emit'] }) =>
      (target.emit as (event: E, payload: MembershipAnswers[E]) => void)(answer, result);
    emit(socket);
    if (toOtherDevices) emit(socket.to(userChannel(socket.data.user.id)));
    // Before the ack, so a client has heard it by the time it reads the answer.
    if (followWith) socket.emit('room-left', followWith);
    return result;
  };
}
