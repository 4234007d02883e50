/**
 * The caller's socket, as the services see it (a send, a join). How the caller knows the
 * sender's membership without a query: a socket is in `room:<id>` when
 * its user is a member (see docs/ARCHITECTURE.md). Only a pre-check: a leave made on another pod
 * moves the socket out through the bus a moment after the leave is answered, so a socket may
 * still be in the room of a user who has left it. The group commit's statement checks
 * membership in the database for every user's message (`requireMember`).
 */
export interface MembershipHint {
  isInRoom(roomId: string): boolean;
  /** Called when the database says "member" (a send found it, a join wrote it) but the socket was not in the room yet. */
  enterRoom(roomId: string): void;
}
