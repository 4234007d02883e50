import type { ChatNamespace } from './types.ts';

/**
 * How this pod tells of a move of a user's sockets (a join's socketsJoin, a leave's socketsLeave,
 * or one replayed after a bus outage): the other pods holding sockets of the user hear
 * `membership-check` on the main channel, after the move, and check them
 * (membership-reconciler.ts); this pod's reconciler, which hears nothing from its own
 * serverSideEmit, is told directly, for the handshakes of the user it is running. Made once per
 * pod by the composition root and handed to whoever moves sockets and to the reconciler.
 */
export interface MembershipMoves {
  /** A move of the user's sockets went out on the bus. */
  announce(userId: string): void;
  /** The reconciler's listener for this pod's own moves; moves announced before it is set go to no one here. */
  onOwnMove(listener: (userId: string) => void): void;
}

export function createMembershipMoves(nsp: ChatNamespace): MembershipMoves {
  let ownMove: ((userId: string) => void) | undefined;
  return {
    announce(userId) {
      nsp.serverSideEmit('membership-check', userId);
      ownMove?.(userId);
    },
    onOwnMove(listener) {
      ownMove = listener;
    },
  };
}
