/** The events that tell a client whether its user is a member of a room (PROTOCOL §2, §3). */
type MembershipAnswer = 'room-joined' | 'room-left';

export interface MembershipAnswerWatch {
  /** The last of `room-joined` / `room-left` for the room that went out to the socket since the watch began. */
  last(roomId: string): MembershipAnswer | undefined;
  stop(): void;
}

/**
 * Watches what goes out to one socket: a `room-left` sent to all of a user's devices (a leave on
 * another pod) goes out through the adapter, in no order with the caller's own answer, and only
 * the socket's outgoing packets show which of the two it heard first.
 */
export function watchMembershipAnswers(socket: {
  onAnyOutgoing(listener: (event: string, ...args: unknown[]) => void): unknown;
  offAnyOutgoing(listener: (event: string, ...args: unknown[]) => void): unknown;
}): MembershipAnswerWatch {
  const last = new Map<string, MembershipAnswer>();
  const listener = (event: string, payload?: unknown) => {
    if (event !== 'room-joined' && event !== 'room-left') return;
    const roomId = (payload as { roomId?: unknown } | undefined)?.roomId;
    // Clients may spell a room id in capitals; the room is the same.
    if (typeof roomId === 'string') last.set(roomId.toLowerCase(), event);
  };
  socket.onAnyOutgoing(listener);
  return {
    last: (roomId) => last.get(roomId.toLowerCase()),
    stop: () => socket.offAnyOutgoing(listener),
  };
}
