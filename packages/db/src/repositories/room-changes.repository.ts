import type { Sql } from 'postgres';
import type { MessageType } from '@chat/protocol';
import type { RoomEventKind, SenderKind } from '../schema.ts';
import { durabilityBarrier } from './durability-barrier.ts';
import { asDate, type HistoryRow } from './messages.repository.ts';
import { storedExpiries } from './room-expiries.ts';

/** The live event each change of the feed was announced with (PROTOCOL §16). */
export type ChangeEvent = 'new-message' | 'message-deleted' | RoomEventKind;

/** One change of a room's feed, as stored: enough to rebuild the live event's payload. */
export interface ChangeRow {
  changeSeq: number;
  event: ChangeEvent;
  roomId: string;
  /** new-message / message-deleted. */
  /** Its content is null once the message is deleted: a feed never serves a deleted message's content. */
  message: (Omit<HistoryRow, 'roomId'> & { clientMessageId: string | null; isDeleted: boolean }) | null;
  /** user-joined / user-left. */
  userId: string | null;
  nickname: string | null;
  memberCount: number | null;
  /** room-expiring / room-lifetime-changed: the room's expiry it announced. */
  expiresAt: Date | null;
  /** When the change committed, near enough: the message's or the room event's creation; null for a delete (not recorded). */
  changedAt: Date | null;
}

interface ChangeRecord {
  change_seq: number;
  event: ChangeEvent;
  message_id: string | null;
  seq: number | null;
  user_id: string | null;
  nickname: string | null;
  sender_kind: SenderKind | null;
  sender_id: string | null;
  type: MessageType | null;
  content: string | null;
  image_url: string | null;
  client_message_id: string | null;
  created_at: Date | string | null;
  is_deleted: boolean | null;
  member_count: number | null;
  expires_at: Date | string | null;
}

/** One room's changes not yet acknowledged by a webhook endpoint (docs/webhooks.md). */
export interface RoomBacklog {
  roomId: string;
  /** The endpoint's cursor in the room: the rows follow it. */
  afterChangeSeq: number;
  /** Oldest first; empty when nothing after the cursor can be read any more. */
  rows: ChangeRow[];
}

function toChangeRow(roomId: string, row: ChangeRecord): ChangeRow {
  return {
    changeSeq: row.change_seq,
    event: row.event,
    roomId,
    message:
      row.message_id === null
        ? null
        : {
            id: row.message_id,
            seq: row.seq ?? 0,
            userId: row.user_id ?? '',
            nickname: row.nickname ?? '',
            senderKind: row.sender_kind ?? 'user',
            senderId: row.sender_id,
            type: row.type ?? 'text',
            content: row.is_deleted ? null : row.content,
            imageUrl: row.is_deleted ? null : row.image_url,
            clientMessageId: row.client_message_id,
            createdAt: asDate(row.created_at ?? new Date(0)),
            isDeleted: row.is_deleted === true,
          },
    userId: row.message_id === null ? row.user_id : null,
    nickname: row.message_id === null ? row.nickname : null,
    memberCount: row.member_count,
    expiresAt: row.expires_at === null ? null : asDate(row.expires_at),
    changedAt: row.event === 'message-deleted' || row.created_at === null ? null : asDate(row.created_at),
  };
}

/**
 * Reads a room's change feed: its messages (by `change_seq`, and by `deleted_change_seq` for
 * their deletes) merged with its `room_events`, oldest first. Numbers are handed out under the
 * room row's lock and commit in order, so any snapshot sees a gap-free prefix of the feed.
 *
 * What it reads is durable before it is returned (`durableOnce`): the group commit's early lock
 * release makes a batch visible before its WAL flush, and a change served then and lost in a
 * crash would have its `changeSeq` handed to another change, which a reader that drops what it
 * has seen (a webhook receiver, a client) would then drop for good.
 */
export function createRoomChangesRepository(sql: Sql) {
  /** Resolves once every change read so far is durable; nothing to wait for when none was read. */
  const durableOnce = async (changesRead: number): Promise<void> => {
    if (changesRead > 0) await durabilityBarrier(sql);
  };

  /**
   * Up to `limit` changes of the room `t.room_id` after `t.after_seq`, oldest first: index range
   * reads (each bounded by `limit`) merged — the room's messages by change number, stored and
   * deleted, on each expiry they are stored under (`storedExpiries` of `t.expires_at` and
   * `t.earlier_expiries`: the room's, and one an extend listed until the partition job has
   * emptied it), each pruned to its day partition, and the room's events. A lateral sub-query of
   * whatever names those four columns `t`.
   */
  const changesAfter = (limit: number) => sql`
    (select x.* from ${storedExpiries(sql, 't')} as d(expires_at) cross join lateral (
       select m.change_seq, 'new-message' as event, m.id as message_id, m.seq, m.user_id,
              u.nickname, u.kind as sender_kind, u.external_id as sender_id, m.type,
              m.content, m.image_url, m.client_message_id, m.created_at, m.is_deleted,
              null::int as member_count, null::timestamptz as expires_at
       from messages m join users u on u.id = m.user_id
       where m.room_id = t.room_id and m.expires_at = d.expires_at and m.change_seq > t.after_seq
       order by m.change_seq limit ${limit}) x
     order by x.change_seq limit ${limit})
    union all
    (select x.* from ${storedExpiries(sql, 't')} as d(expires_at) cross join lateral (
       select m.deleted_change_seq, 'message-deleted', m.id, m.seq, m.user_id,
              u.nickname, u.kind, u.external_id, m.type, m.content, m.image_url,
              m.client_message_id, m.created_at, m.is_deleted, null::int, null::timestamptz
       from messages m join users u on u.id = m.user_id
       where m.room_id = t.room_id and m.expires_at = d.expires_at and m.deleted_change_seq > t.after_seq
       order by m.deleted_change_seq limit ${limit}) x
     order by x.deleted_change_seq limit ${limit})
    union all
    (select e.change_seq, e.kind, null, null, e.user_id, u.nickname, null, null, null,
            null, null, null, e.created_at, null, e.member_count, e.expires_at
     from room_events e left join users u on u.id = e.user_id
     where e.room_id = t.room_id and e.change_seq > t.after_seq
     order by e.change_seq limit ${limit})
    order by change_seq limit ${limit}`;

  return {
    /** Up to `limit` changes after `afterChangeSeq`, oldest first; none when there is no such room. */
    async page(roomId: string, afterChangeSeq: number, limit: number): Promise<ChangeRow[]> {
      const rows = await sql<ChangeRecord[]>`
        with t as (select id as room_id, expires_at, earlier_expiries, ${afterChangeSeq}::int8 as after_seq from rooms where id = ${roomId})
        select c.* from t cross join lateral (${changesAfter(limit)}) c
        order by c.change_seq`;
      await durableOnce(rows.length);
      return rows.map((row) => toChangeRow(roomId, row));
    },

    /**
     * What a webhook endpoint has yet to receive in one delivery lane (docs/webhooks.md): up to
     * `rooms` of the lane's rooms with changes past the endpoint's cursor, least recently
     * delivered first, each with up to `perRoom` of those changes, in one statement. The lane's
     * rooms are read through their own index (migration 0006; the 16 lanes of `WebhookCursorsRepository.lanesBehind`).
     */
    async backlog(endpointId: string, lane: number, limits: { rooms: number; perRoom: number }): Promise<RoomBacklog[]> {
      const rows = await sql<(Partial<ChangeRecord> & { room_id: string; after_seq: number })[]>`
        with t as (
          select r.id as room_id, r.expires_at, r.earlier_expiries, coalesce(c.delivered_change_seq, 0) as after_seq,
                 coalesce(c.updated_at, r.created_at) as since
          from rooms r
          left join webhook_cursors c on c.endpoint_id = ${endpointId} and c.room_id = r.id
          where r.webhook_pending and r.last_change_seq > coalesce(c.delivered_change_seq, 0)
            and get_byte(uuid_send(r.id), 15) % 16 = ${lane}
          order by since, r.id limit ${limits.rooms})
        select t.room_id, t.after_seq, c.* from t left join lateral (${changesAfter(limits.perRoom)}) c on true
        order by t.since, t.room_id, c.change_seq`;
      const backlog: RoomBacklog[] = [];
      for (const row of rows) {
        let room = backlog.at(-1);
        if (room?.roomId !== row.room_id) backlog.push((room = { roomId: row.room_id, afterChangeSeq: row.after_seq, rows: [] }));
        // A room with nothing readable after its cursor comes as one row of nulls.
        if (row.change_seq !== null && row.change_seq !== undefined) room.rows.push(toChangeRow(row.room_id, row as ChangeRecord));
      }
      await durableOnce(backlog.reduce((count, room) => count + room.rows.length, 0));
      return backlog;
    },

    /**
     * When nothing after `afterChangeSeq` is readable any more (a message whose day partition
     * was dropped, docs/partitions.md), the room's last number, read in the same snapshot, so
     * a reader may move past the unreadable ones; null when something after it is readable or
     * there is nothing after it. One statement: a change committing meanwhile is either seen
     * readable or not counted in `last_change_seq`.
     */
    async unreadableThrough(roomId: string, afterChangeSeq: number): Promise<number | null> {
      const [row] = await sql<{ last_change_seq: number }[]>`
        select r.last_change_seq from rooms r
        where r.id = ${roomId} and r.last_change_seq > ${afterChangeSeq}
          and not exists (select 1 from room_events e where e.room_id = r.id and e.change_seq > ${afterChangeSeq})
          and not exists (select 1 from ${storedExpiries(sql, 'r')} as d(expires_at) cross join lateral (
                            select 1 from messages m where m.room_id = r.id and m.expires_at = d.expires_at
                              and (m.change_seq > ${afterChangeSeq} or m.deleted_change_seq > ${afterChangeSeq})
                            limit 1) m)`;
      return row ? row.last_change_seq : null;
    },

    /** The room's last change number, or null when there is no such room. */
    async lastChangeSeq(roomId: string): Promise<number | null> {
      const [row] = await sql<{ last_change_seq: number }[]>`
        select last_change_seq from rooms where id = ${roomId}`;
      return row ? row.last_change_seq : null;
    },
  };
}

export type RoomChangesRepository = ReturnType<typeof createRoomChangesRepository>;
