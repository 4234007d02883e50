import { toRoomChange, type ChangeRow, type RoomChangesRepository } from '@chat/db';
import { AppError, CHANGES_DEFAULT_LIMIT, type ChangesQuery, type RoomChange } from '@chat/protocol';
import type { RoomService } from './room.service.ts';

/**
 * True when `rows` (read with one row more than the page) are every change after `after` up to
 * where they stop: numbered after+1, after+2, … without a hole, and reaching `lastChangeSeq`
 * unless they fill the page (then `hasMore` says the rest follows).
 */
function whole(rows: readonly ChangeRow[], after: number, lastChangeSeq: number, pageRows: number): boolean {
  if (rows.some((row, index) => row.changeSeq !== after + 1 + index)) return false;
  return rows.length === pageRows || (rows.at(-1)?.changeSeq ?? after) >= lastChangeSeq;
}

/**
 * PROTOCOL §16 [ext]: a room's change feed, oldest first after a `changeSeq`, for the room's
 * whole life. Guests may read, 404 for no room. After the room expired the feed stays readable
 * while its rows exist (an offline client still learns of the last messages and `room-expired`);
 * once the expiry day's messages are dropped (docs/partitions.md) a page would have holes, and
 * a feed with holes is not served: 410, as history answers.
 */
export function createChangeFeedService(deps: { changes: RoomChangesRepository; roomService: RoomService }) {
  return {
    async changes(roomId: string, query: ChangesQuery): Promise<{ changes: RoomChange[]; hasMore: boolean }> {
      const room = await deps.roomService.requireRoom(roomId);
      const expired = room.expiresAt.getTime() <= Date.now();
      const limit = query.limit ?? CHANGES_DEFAULT_LIMIT;
      const after = query.after ?? 0;
      // Read before the page: the page's later snapshot holds at least every change up to it.
      const lastChangeSeq = expired ? await deps.changes.lastChangeSeq(room.id) : null;
      const rows = await deps.changes.page(room.id, after, limit + 1);
      // A live room's feed is whole by construction (its day is never dropped while it lives).
      if (lastChangeSeq !== null && !whole(rows, after, lastChangeSeq, limit + 1)) throw new AppError('ROOM_EXPIRED');
      return { changes: rows.slice(0, limit).map(toRoomChange), hasMore: rows.length > limit };
    },
  };
}

export type ChangeFeedService = ReturnType<typeof createChangeFeedService>;
