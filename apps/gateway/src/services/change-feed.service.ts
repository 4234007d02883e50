import { toRoomChange, type ChangeRow, type RoomChangesRepository } from '@chat/db';
import {
  AppError,
  CHANGES_DEFAULT_LIMIT,
  type AnonymousMembershipPayload,
  type ChangesQuery,
  type RoomChange,
  type UserJoinedPayload,
} from '@chat/protocol';
import type { RoomService } from './room.service.ts';
import type { AuthenticatedUser } from './user-auth.service.ts';

type ChangesPage = { changes: RoomChange[]; hasMore: boolean };

/**
 * True when `rows` (read with one row more than the page) are every change after `after` up to
 * where they stop: numbered after+1, after+2, … without a hole, and reaching `lastChangeSeq`
 * unless they fill the page (then `hasMore` says the rest follows).
 */
function whole(rows: readonly ChangeRow[], after: number, lastChangeSeq: number, pageRows: number): boolean {
  if (rows.some((row, index) => row.changeSeq !== after + 1 + index)) return false;
  return rows.length === pageRows || (rows.at(-1)?.changeSeq ?? after) >= lastChangeSeq;
}

const isMembershipChange = (change: RoomChange) => change.event === 'user-joined' || change.event === 'user-left';

/**
 * A membership change as a non-member reads it: who joined or left is left out (PROTOCOL §9:
 * who is in a room is for the people in it), the count and the number stay, so the feed keeps
 * every `changeSeq` and a reader's gap detection still works.
 */
function withoutIdentity(change: RoomChange): RoomChange {
  if (!isMembershipChange(change)) return change;
  const { roomId, memberCount, changeSeq } = change.payload as UserJoinedPayload;
  const payload: AnonymousMembershipPayload = { roomId, memberCount, changeSeq };
  return { ...change, payload };
}

/**
 * PROTOCOL §16 [ext]: a room's change feed, oldest first after a `changeSeq`, for the room's
 * whole life. Guests may read, 404 for no room. After the room expired the feed stays readable
 * while its rows exist (an offline client still learns of the last messages and `room-expired`);
 * once the expiry day's messages are dropped (docs/partitions.md) a page would have holes, and
 * a feed with holes is not served: 410, as history answers.
 */
export function createChangeFeedService(deps: {
  changes: RoomChangesRepository;
  roomService: RoomService;
  isMember(roomId: string, userId: string): Promise<boolean>;
}) {
  async function read(roomId: string, query: ChangesQuery): Promise<{ roomId: string; page: ChangesPage }> {
    const room = await deps.roomService.requireRoom(roomId);
    const limit = query.limit ?? CHANGES_DEFAULT_LIMIT;
    const after = query.after ?? 0;
    // Read before the page: the page's later snapshot holds at least every change up to it.
    // For every room, not only those this pod holds as expired: its cached expiry can be stale
    // (a close through the server API on another pod, whose notice this pod missed), and a
    // live room's feed is whole anyway, so the check costs one primary-key read.
    const lastChangeSeq = await deps.changes.lastChangeSeq(room.id);
    // Deleted since the lookup (an expired room's tombstone goes after ROOM_TOMBSTONE_TTL).
    if (lastChangeSeq === null) throw new AppError('ROOM_NOT_FOUND');
    const rows = await deps.changes.page(room.id, after, limit + 1);
    if (!whole(rows, after, lastChangeSeq, limit + 1)) throw new AppError('ROOM_EXPIRED');
    return { roomId: room.id, page: { changes: rows.slice(0, limit).map(toRoomChange), hasMore: rows.length > limit } };
  }

  /**
   * Whether the page's membership changes must name nobody for `viewer`: a guest or a user who
   * is not a member now. Asked only when the page has such a change and a user to ask about.
   */
  async function hidesIdentities(viewer: AuthenticatedUser | null, roomId: string, changes: readonly RoomChange[]): Promise<boolean> {
    if (!changes.some(isMembershipChange)) return false;
    return viewer === null || !(await deps.isMember(roomId, viewer.id));
  }

  return {
    /** The whole feed, who joined and left included: for trusted backends (the server API, §17). */
    async changes(roomId: string, query: ChangesQuery): Promise<ChangesPage> {
      return (await read(roomId, query)).page;
    },

    /** The public feed: whole for a member of the room; for anyone else joins and leaves name nobody. */
    async changesFor(viewer: AuthenticatedUser | null, roomId: string, query: ChangesQuery): Promise<ChangesPage> {
      const { roomId: room, page } = await read(roomId, query);
      if (!(await hidesIdentities(viewer, room, page.changes))) return page;
      return { changes: page.changes.map(withoutIdentity), hasMore: page.hasMore };
    },
  };
}

export type ChangeFeedService = ReturnType<typeof createChangeFeedService>;
