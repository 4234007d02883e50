import type { RoomsRepository, StoredRoom } from '@chat/db';

export type RoomMeta = Pick<StoredRoom, 'id' | 'name' | 'createdBy' | 'createdAt' | 'expiresAt'>;

/**
 * A room's id, name, creator and lifetime never change, so the hot path reads them from this
 * bounded in-process map instead of the database. Misses are not cached: a room created on
 * another pod a moment ago must be found.
 */
export class RoomCache {
  private readonly entries = new Map<string, RoomMeta>();

  constructor(
    private readonly rooms: RoomsRepository,
    private readonly capacity = 10_000,
  ) {}

  async get(roomId: string): Promise<RoomMeta | null> {
    const cached = this.entries.get(roomId);
    if (cached) return cached;
    const room = await this.rooms.find(roomId);
    if (!room) return null;
    this.remember(room);
    return this.entries.get(roomId) ?? null;
  }

  remember(room: StoredRoom | RoomMeta): void {
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(room.id, {
      id: room.id,
      name: room.name,
      createdBy: room.createdBy,
      createdAt: room.createdAt,
      expiresAt: room.expiresAt,
    });
  }

  forget(roomId: string): void {
    this.entries.delete(roomId);
  }
}
