import { toRoomChange, type RoomChangesRepository } from '@chat/db';
import { CHANGES_DEFAULT_LIMIT, type ChangesQuery, type RoomChange } from '@chat/protocol';
import type { RoomService } from './room.service.ts';

/**
 * PROTOCOL §16 [ext]: a room's change feed, oldest first after a `changeSeq`. Same access as
 * history (§7): guests may read, 404 for no room, 410 once it expired.
 */
export function createChangeFeedService(deps: { changes: RoomChangesRepository; roomService: RoomService }) {
  return {
    async changes(roomId: string, query: ChangesQuery): Promise<{ changes: RoomChange[]; hasMore: boolean }> {
      await deps.roomService.requireActiveRoom(roomId);
      const limit = query.limit ?? CHANGES_DEFAULT_LIMIT;
      const rows = await deps.changes.page(roomId.toLowerCase(), query.after ?? 0, limit + 1);
      return { changes: rows.slice(0, limit).map(toRoomChange), hasMore: rows.length > limit };
    },
  };
}

export type ChangeFeedService = ReturnType<typeof createChangeFeedService>;
