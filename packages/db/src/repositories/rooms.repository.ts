import { and, desc, eq, gt, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { rooms } from '../schema.ts';

export interface StoredRoom {
  id: string;
  name: string;
  createdBy: string;
  memberCount: number;
  createdAt: Date;
  expiresAt: Date;
  /** Messages ever sent in the room (its last `seq`; deleted ones count). */
  messageCount: number;
  lastMessageAt: Date | null;
}

const columns = {
  id: rooms.id,
  name: rooms.name,
  createdBy: rooms.createdBy,
  memberCount: rooms.memberCount,
  createdAt: rooms.createdAt,
  expiresAt: rooms.expiresAt,
  messageCount: rooms.lastSeq,
  lastMessageAt: rooms.lastMessageAt,
};

export function createRoomsRepository(db: Db) {
  return {
    async create(room: Omit<StoredRoom, 'memberCount' | 'messageCount' | 'lastMessageAt'>): Promise<StoredRoom> {
      const [row] = await db.insert(rooms).values(room).returning(columns);
      if (!row) throw new Error('room insert returned no row');
      return row;
    },

    async find(id: string): Promise<StoredRoom | null> {
      const rows = await db.select(columns).from(rooms).where(eq(rooms.id, id)).limit(1);
      return rows[0] ?? null;
    },

    /** Active rooms, newest first; `before` is the last room of the previous page. */
    async listActive(limit: number, before: StoredRoom | null): Promise<StoredRoom[]> {
      // `expired_at is null` as well: the listing's index holds only rooms not yet swept.
      const active = and(isNull(rooms.expiredAt), gt(rooms.expiresAt, sql`now()`));
      const keyset = before
        ? or(
            lt(rooms.createdAt, before.createdAt),
            and(eq(rooms.createdAt, before.createdAt), lt(rooms.id, before.id)),
          )
        : undefined;
      return db
        .select(columns)
        .from(rooms)
        .where(keyset ? and(active, keyset) : active)
        .orderBy(desc(rooms.createdAt), desc(rooms.id))
        .limit(limit);
    },
  };
}

export type RoomsRepository = ReturnType<typeof createRoomsRepository>;
