import type { RoomsRepository, StoredRoom } from '@chat/db';

export type RoomMeta = Pick<StoredRoom, 'id' | 'name' | 'createdBy' | 'createdAt' | 'expiresAt'>;

/** How long "no such room" is remembered. */
const MISSING_TTL_MS = 5000;
/**
 * How long a room is kept before it is read again. Its lifetime changes only through the
 * server API, whose pod tells the others over the bus (`forget`); a notice the bus lost (a
 * Redis blip on either side) would otherwise leave this pod serving the room by its old
 * expiry for good: history of a closed room, 410 for an extended one. Sends and joins are
 * re-checked by the database either way.
 */
const MAX_AGE_MS = 30_000;

const metaOf = (room: StoredRoom | RoomMeta): RoomMeta => ({
  id: room.id,
  name: room.name,
  createdBy: room.createdBy,
  createdAt: room.createdAt,
  expiresAt: room.expiresAt,
});

/** One lookup on its way to the database; its identity tells whether `forget` came meanwhile. */
interface Lookup {
  result: Promise<RoomMeta | null>;
}

/**
 * A room's id, name and creator never change, and its lifetime only through the server API,
 * so the hot path reads them from this bounded in-process map instead of the database. "No such room" is remembered for a few
 * seconds too, so the same made-up id costs one query, not one per event. That cannot hide a
 * room created meanwhile on another pod: a room's id is a UUIDv7 made when the room is (74
 * random bits), so no client can have asked for it before it existed.
 *
 * Events that miss the same room while its lookup is in flight wait for that lookup instead of
 * each sending their own: a pod that starts, or first hears of a busy room, otherwise queries
 * once per event until the first answer is in (measured: 600 clients' first sends into 60
 * rooms over two pods made ~700 lookups where 120 were needed).
 */
export class RoomCache {
  /** The room, and when it was read (ms). */
  private readonly entries = new Map<string, { room: RoomMeta; readAt: number }>();
  private readonly inFlight = new Map<string, Lookup>();
  /** roomId → when the miss is forgotten (ms); in insertion order, so the oldest is first. */
  private readonly missing = new Map<string, number>();
  /** Counts `forget` calls: a read that began before one may hold what it made stale. */
  private forgets = 0;

  constructor(
    private readonly rooms: RoomsRepository,
    private readonly options: { capacity?: number; maxAgeMs?: number; onLookup?: (found: boolean) => void } = {},
  ) {}

  private get capacity(): number {
    return this.options.capacity ?? 10_000;
  }

  /** The cached room, without a lookup: the send path's check when it is known (most sends). */
  peek(roomId: string): RoomMeta | undefined {
    const entry = this.entries.get(roomId);
    if (!entry) return undefined;
    if (Date.now() - entry.readAt <= (this.options.maxAgeMs ?? MAX_AGE_MS)) return entry.room;
    this.entries.delete(roomId);
    return undefined;
  }

  async get(roomId: string): Promise<RoomMeta | null> {
    const cached = this.peek(roomId);
    if (cached) return cached;
    if (this.isKnownMissing(roomId)) return null;
    const pending = this.inFlight.get(roomId);
    if (pending) return pending.result;
    const lookup: Lookup = { result: Promise.resolve(null) };
    lookup.result = this.lookUp(roomId, lookup);
    this.inFlight.set(roomId, lookup);
    return lookup.result;
  }

  /**
   * A failed lookup is not remembered: its waiters all hear the error, the next event asks
   * again. One that `forget` overtook (the room's lifetime changed meanwhile) answers its
   * waiters but is not kept: it may have read the room as it was before the change.
   */
  private async lookUp(roomId: string, lookup: Lookup): Promise<RoomMeta | null> {
    try {
      const room = await this.rooms.find(roomId);
      this.options.onLookup?.(room !== null);
      if (this.inFlight.get(roomId) !== lookup) return room ? metaOf(room) : null;
      if (!room) {
        this.rememberMissing(roomId);
        return null;
      }
      this.remember(room);
      return this.entries.get(roomId)?.room ?? null;
    } finally {
      if (this.inFlight.get(roomId) === lookup) this.inFlight.delete(roomId);
    }
  }

  remember(room: StoredRoom | RoomMeta): void {
    this.missing.delete(room.id);
    // Re-inserted: the map's order stays the order of reading, the oldest evicted first.
    this.entries.delete(room.id);
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(room.id, { room: metaOf(room), readAt: Date.now() });
  }

  forget(roomId: string): void {
    this.forgets += 1;
    this.entries.delete(roomId);
    this.inFlight.delete(roomId);
  }

  /** To pass to `seed` with what a read begun now returns. */
  generation(): number {
    return this.forgets;
  }

  /**
   * Rooms another statement read anyway (a handshake's user's rooms): kept, so that the pod's
   * first event in each asks the database nothing. Dropped whole when any room was forgotten
   * since `generation` (its lifetime changed meanwhile: this read may predate the change; rare,
   * and the next event looks the room up). Rooms already cached are left as they are.
   */
  seed(rooms: readonly RoomMeta[], generation: number): void {
    if (generation !== this.forgets) return;
    for (const room of rooms) if (!this.entries.has(room.id)) this.remember(room);
  }

  private isKnownMissing(roomId: string): boolean {
    const until = this.missing.get(roomId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.missing.delete(roomId);
    return false;
  }

  private rememberMissing(roomId: string): void {
    if (this.missing.size >= this.capacity) {
      const oldest = this.missing.keys().next();
      if (!oldest.done) this.missing.delete(oldest.value);
    }
    this.missing.set(roomId, Date.now() + MISSING_TTL_MS);
  }
}
