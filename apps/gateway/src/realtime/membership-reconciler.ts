import type { Logger } from 'pino';
import { roomChannel, userChannel } from '@chat/protocol';
import type { MembershipMoves } from './membership-moves.ts';
import { roomIdOfChannel, roomIdsOf } from './socket-rooms.ts';
import type { ChatNamespace } from './types.ts';

/** Users read in one query. */
const USERS_PER_READ = 500;
/** A user whose sockets moved while their rooms were read is read again, this many times at most. */
const MAX_ATTEMPTS = 3;

export interface MembershipReconciler {
  /** Every local user's sockets are checked (the main channel, and the moves on it, were lost). */
  checkAll(): void;
  /**
   * A handshake of the user is about to read the user's rooms (handshake.ts). Call the function
   * returned once its socket is connected or about to be (nothing but `next()` left), or the
   * handshake failed: if the user's membership moved meanwhile, the user's sockets are checked.
   */
  watchHandshake(userId: string): () => void;
  /**
   * A join-room or leave-room of the user is about to change the membership here. Call the
   * function returned once the caller's socket is moved: if another pod's move of the user was
   * heard meanwhile, the user's sockets are checked.
   */
  watchChange(userId: string): () => void;
}

/** Users with something of theirs running here, and how many moves of theirs this pod heard meanwhile. */
type Watched = Map<string, { running: number; moves: number }>;

/** Marks `userId` watched in `watched`; the function returned ends the watch and says whether a move was heard during it. */
function watch(watched: Watched, userId: string): () => boolean {
  let entry = watched.get(userId);
  if (!entry) watched.set(userId, (entry = { running: 0, moves: 0 }));
  entry.running += 1;
  const seen = entry.moves;
  let ended = false;
  return () => {
    if (ended) return false;
    ended = true;
    entry.running -= 1;
    if (entry.running === 0) watched.delete(userId);
    return entry.moves !== seen;
  };
}

const noteMove = (watched: Watched, userId: string) => {
  const entry = watched.get(userId);
  if (entry) entry.moves += 1;
};

/**
 * Sockets mirror database membership (docs/ARCHITECTURE.md), moved by messages on the bus: a
 * join's socketsJoin, a leave's socketsLeave, each published after its commit. Two changes of
 * one user's membership of one room made at once on two pods (two devices) commit in one order
 * and may be published in the other; a move the bus lost (this pod's subscriber away) never
 * arrives; one replayed after a publisher's outage (publish-gaps.ts) arrives late. Each left the
 * user's sockets here in a room the database says they left, hearing its broadcasts, or out of
 * one they joined. So each move is followed on the same channel by `membership-check`, and a pod
 * holding sockets of that user reads the user's rooms and puts its sockets where they say; after
 * the main channel was lost, every local user is checked. A room past its expiry is left only by
 * the sweep (its members hear `room-expired` first), and joined by no one.
 */
export function createMembershipReconciler(options: {
  nsp: ChatNamespace;
  /** This pod's own moves, told here for the handshakes of their users (membership-moves.ts). */
  moves: MembershipMoves;
  membershipsOf(userIds: readonly string[]): Promise<Map<string, Map<string, boolean>>>;
  logger: Logger;
}): MembershipReconciler {
  const { nsp, logger } = options;
  /** Users to check at the next turn, with the attempts made so far. */
  let due = new Map<string, number>();
  let scheduled = false;
  /**
   * Users being read: by which read (the latest one decides: an older one may finish last, behind
   * a slow query, with what it read before the newer one), and whether their sockets moved
   * meanwhile (a join answered here, a move from the bus, a handshake): what was read may predate
   * that move, so they are read again.
   */
  const reading = new Map<string, { read: number; moved: boolean }>();
  let reads = 0;

  const userOf = (socketId: string) => nsp.sockets.get(socketId)?.data.user?.id;
  const noteMoved = (room: string, socketId: string) => {
    if (reading.size === 0 || roomIdOfChannel(room) === null) return;
    const userId = userOf(socketId);
    const entry = userId === undefined ? undefined : reading.get(userId);
    if (entry) entry.moved = true;
  };
  nsp.adapter.on('join-room', noteMoved);
  nsp.adapter.on('leave-room', noteMoved);

  const hasLocalSockets = (userId: string) => (nsp.adapter.rooms.get(userChannel(userId))?.size ?? 0) > 0;

  function check(userId: string, attempts = 0): void {
    if (!hasLocalSockets(userId) || due.has(userId)) return;
    due.set(userId, attempts);
    if (scheduled) return;
    scheduled = true;
    // One read for the checks of a turn (a main channel back checks every local user at once).
    setImmediate(() => {
      scheduled = false;
      const batch = due;
      due = new Map();
      const users = [...batch.keys()];
      for (let start = 0; start < users.length; start += USERS_PER_READ) {
        void read(users.slice(start, start + USERS_PER_READ), batch);
      }
    });
  }

  async function read(users: string[], attempts: Map<string, number>): Promise<void> {
    const readId = ++reads;
    for (const userId of users) reading.set(userId, { read: readId, moved: false });
    const ownEntry = (userId: string) => {
      const entry = reading.get(userId);
      return entry?.read === readId ? entry : undefined;
    };
    let memberships: Map<string, Map<string, boolean>>;
    try {
      memberships = await options.membershipsOf(users);
    } catch (error) {
      // The moves stand as the bus carried them; the next move or bus loss checks again.
      logger.warn({ err: error, users: users.length }, 'membership check failed: sockets stay as the bus moved them');
      for (const userId of users) if (ownEntry(userId)) reading.delete(userId);
      return;
    }
    for (const userId of users) {
      const entry = ownEntry(userId);
      // A newer read of the user is under way: it decides.
      if (!entry) continue;
      reading.delete(userId);
      if (entry.moved) {
        const made = (attempts.get(userId) ?? 0) + 1;
        if (made < MAX_ATTEMPTS) check(userId, made);
        continue;
      }
      place(userId, memberships.get(userId) ?? new Map());
    }
  }

  /** Puts every local socket of the user into its live rooms and out of the rooms it has no membership of. */
  function place(userId: string, rooms: Map<string, boolean>): void {
    let joined = 0;
    let left = 0;
    for (const socketId of nsp.adapter.rooms.get(userChannel(userId)) ?? []) {
      const socket = nsp.sockets.get(socketId);
      if (!socket) continue;
      const current = new Set(roomIdsOf(socket));
      for (const [roomId, live] of rooms) {
        if (live && !current.has(roomId)) {
          void socket.join(roomChannel(roomId));
          joined += 1;
        }
      }
      for (const roomId of current) {
        if (!rooms.has(roomId)) {
          void socket.leave(roomChannel(roomId));
          left += 1;
        }
      }
    }
    if (joined > 0 || left > 0) logger.info({ userId, joined, left }, 'membership check moved sockets to where the database puts them');
  }

  /**
   * Users with handshakes running here, and how many moves of theirs this pod heard of so far.
   * A handshake reads the user's rooms, puts its socket into them, and waits for the bus; the
   * socket joins `nsp.sockets` only as the handshake ends. Until then no move reaches it (the
   * adapter moves connected sockets, `place` too): a leave committed after the read, whether its
   * move and check came from another pod or from this one (its own moves are not checked here),
   * left the new socket in the room, hearing it, for as long as it stayed connected.
   */
  const handshakes: Watched = new Map();
  options.moves.onOwnMove((userId) => noteMove(handshakes, userId));
  /**
   * Users with a join or leave running here, and the moves of theirs other pods made meanwhile.
   * Two changes of one user on two pods (two devices): the one committed last may be answered
   * first, its move and check reaching this pod before this pod's own change moves its sockets
   * — the check then finds them right, and this pod's move, made after, puts them where the
   * database no longer says (this pod does not check its own moves). Only then, rarely, is the
   * user read again; this pod's own moves do not count.
   */
  const changes: Watched = new Map();

  nsp.on('membership-check', (userId) => {
    if (typeof userId !== 'string') return;
    noteMove(handshakes, userId);
    noteMove(changes, userId);
    check(userId);
  });

  return {
    checkAll() {
      for (const room of nsp.adapter.rooms.keys()) {
        if (room.startsWith(USER_CHANNEL_PREFIX)) check(room.slice(USER_CHANNEL_PREFIX.length));
      }
    },
    watchHandshake(userId) {
      const end = watch(handshakes, userId);
      // Read after the socket is connected (the check waits a turn, then the database), so
      // `place` reaches it; the read is as recent as every move heard so far.
      return () => {
        if (end()) check(userId);
      };
    },
    watchChange(userId) {
      const end = watch(changes, userId);
      return () => {
        if (end()) check(userId);
      };
    },
  };
}

const USER_CHANNEL_PREFIX = userChannel('');
