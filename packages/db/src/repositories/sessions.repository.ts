import type { Sql } from 'postgres';
import { asDate } from './messages.repository.ts';
import type { StoredRoom } from './rooms.repository.ts';

/** A live room of a session's user, with what never changes about it (and its expiry). */
export type SessionRoom = Pick<StoredRoom, 'id' | 'name' | 'createdBy' | 'createdAt' | 'expiresAt'>;

/** A user a token names, as a connecting socket needs it. */
export interface SessionUser {
  nickname: string;
  /** The user's rooms that are still live: read anyway to find them, so the pod need not look them up again. */
  rooms: SessionRoom[];
}

export interface SessionRequest {
  /** A verified token's subject (a lowercase UUID). */
  id: string;
  /** The token's nickname, to be stored; null: the token names none, the user must exist. */
  nickname: string | null;
  /**
   * Whether to read the user's live rooms (a connecting socket is put into them). A REST request
   * needs only the user: reading every room of a user who belongs to thousands cost each of
   * their API requests ~185 ms of gateway CPU and filled the pod's room cache with them.
   */
  rooms: boolean;
}

/**
 * Sign-in, for connecting sockets and authenticated REST requests alike, many at once (a pod
 * receives a reconnect storm when another pod dies): stores the users whose token names them and
 * returns each known user's nickname and live rooms, in one statement and one round trip for
 * the whole batch. The one place where a token's nickname is written.
 */
export function createSessionsRepository(sql: Sql) {
  return {
    /**
     * One answer per request, in order: the user as it exists afterwards, or null (a token
     * without a nickname for an unknown user). Requests for the same user share one answer,
     * and the last one's nickname is stored. A request whose nickname is already stored writes
     * nothing: the insert is skipped (the stored nickname, read by key, is the same) before
     * `on conflict` is reached, because `on conflict do update … where false` still locks the
     * row, and a row lock is a write (WAL, a transaction id, and a commit that waits for its
     * flush) for every returning user.
     *
     * Every lookup is by key, one per request (a scalar sub-select, and lateral sub-selects that
     * `offset 0` keeps from being merged into the join): the planner takes `json_to_recordset`
     * for 100 rows whatever the batch holds, and with plain joins it hashed the whole of `users`,
     * `room_members` and `rooms` for every handshake turn, a few requests each, in any database
     * of fewer than some tens of thousands of users (test/storage/key-lookup-plans.test.ts).
     */
    async open(requests: readonly SessionRequest[]): Promise<(SessionUser | null)[]> {
      const byId = new Map<string, { nickname: string | null; rooms: boolean }>();
      for (const request of requests) {
        byId.set(request.id, { nickname: request.nickname, rooms: request.rooms || byId.get(request.id)?.rooms === true });
      }
      if (byId.size === 0) return [];
      const sessions = new Map<string, SessionUser>();
      const input = JSON.stringify([...byId].map(([id, { nickname, rooms }]) => ({ id, nickname, rooms })));
      const rows = await sql<
        { id: string; nickname: string; room_id: string | null; name: string; created_by: string; created_at: Date; expires_at: Date }[]
      >`
        with input as (
          select id, nickname, rooms from json_to_recordset(${input}::text::json) as x(id uuid, nickname text, rooms boolean)
        ), stored as (
          insert into users (id, nickname)
          select i.id, i.nickname from input i
          where i.nickname is not null
            and (select u.nickname from users u where u.id = i.id) is distinct from i.nickname
          on conflict (id) do update set nickname = excluded.nickname, updated_at = now()
            where users.nickname is distinct from excluded.nickname
        )
        select i.id, coalesce(i.nickname, u.nickname) as nickname, m.room_id, m.name, m.created_by, m.created_at, m.expires_at
        from input i
        left join lateral (select u.id, u.nickname from users u where u.id = i.id offset 0) u on true
        left join lateral (
          select m.room_id, r.name, r.created_by, r.created_at, r.expires_at
          from room_members m join rooms r on r.id = m.room_id
          where i.rooms and m.user_id = i.id and r.expires_at > now()
          offset 0
        ) m on true
        where i.nickname is not null or u.id is not null`;
      for (const row of rows) {
        let session = sessions.get(row.id);
        if (!session) sessions.set(row.id, (session = { nickname: row.nickname, rooms: [] }));
        if (row.room_id !== null) {
          session.rooms.push({ id: row.room_id, name: row.name, createdBy: row.created_by, createdAt: asDate(row.created_at), expiresAt: asDate(row.expires_at) });
        }
      }
      return requests.map((request) => sessions.get(request.id) ?? null);
    },
  };
}

export type SessionsRepository = ReturnType<typeof createSessionsRepository>;
