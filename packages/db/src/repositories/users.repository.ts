import { inArray, sql } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { users } from '../schema.ts';
import { uuidArrayLiteral } from './uuid-array.ts';

export interface StoredUser {
  id: string;
  nickname: string;
}

export function createUsersRepository(db: Db) {
  return {
    /**
     * A bot / system sender of the server API, stored as a user row so its messages fit the
     * same table and joins; the name it publishes under is kept current.
     */
    async upsertSender(sender: { id: string; kind: 'bot' | 'system'; externalId: string; name: string }): Promise<void> {
      await db
        .insert(users)
        .values({ id: sender.id, nickname: sender.name, kind: sender.kind, externalId: sender.externalId })
        .onConflictDoUpdate({
          target: users.id,
          set: { nickname: sender.name, updatedAt: sql`now()` },
          setWhere: sql`${users.nickname} is distinct from excluded.nickname`,
        });
    },

    /**
     * The stored ones of `ids`, by id, in one query. The ids go as one array literal, not one
     * parameter each: a dead pod's users can outnumber a statement's 65,534 parameters.
     */
    async findMany(ids: readonly string[]): Promise<Map<string, StoredUser>> {
      if (ids.length === 0) return new Map();
      const rows = await db
        .select({ id: users.id, nickname: users.nickname })
        .from(users)
        .where(inArray(users.id, sql`(select unnest(${uuidArrayLiteral(ids)}::text::uuid[]))`));
      return new Map(rows.map((row) => [row.id, row]));
    },
  };
}

export type UsersRepository = ReturnType<typeof createUsersRepository>;
