import type { Sql } from 'postgres';
import type { MessageType } from '@chat/protocol';
import type { RoomEventKind, SenderKind } from '../schema.ts';
import { asDate, type HistoryRow } from './messages.repository.ts';

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
  /** room-expiring. */
  expiresAt: Date | null;
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

/**
 * Reads a room's change feed: its messages (by `change_seq`, and by `deleted_change_seq` for
 * their deletes) merged with its `room_events`, oldest first. Numbers are handed out under the
 * room row's lock and commit in order, so any snapshot sees a gap-free prefix of the feed.
 */
export function createRoomChangesRepository(sql: Sql) {
  return {
    /**
     * Up to `limit` changes after `afterChangeSeq`, oldest first: three index range reads
     * (each bounded by `limit`) merged. A room's messages all sit in the partition of the
     * room's `expires_at`, which prunes the other days.
     */
    async page(roomId: string, afterChangeSeq: number, limit: number): Promise<ChangeRow[]> {
      const rows = await sql<ChangeRecord[]>`
        with room as (select expires_at from rooms where id = ${roomId})
        select * from (
          (select m.change_seq, 'new-message' as event, m.id as message_id, m.seq, m.user_id,
                  u.nickname, u.kind as sender_kind, u.external_id as sender_id, m.type,
                  m.content, m.image_url, m.client_message_id, m.created_at, m.is_deleted,
                  null::int as member_count, null::timestamptz as expires_at
           from messages m join users u on u.id = m.user_id
           where m.room_id = ${roomId} and m.expires_at = (select expires_at from room)
             and m.change_seq > ${afterChangeSeq}
           order by m.change_seq limit ${limit})
          union all
          (select m.deleted_change_seq, 'message-deleted', m.id, m.seq, m.user_id,
                  u.nickname, u.kind, u.external_id, m.type, m.content, m.image_url,
                  m.client_message_id, m.created_at, m.is_deleted, null, null
           from messages m join users u on u.id = m.user_id
           where m.room_id = ${roomId} and m.expires_at = (select expires_at from room)
             and m.deleted_change_seq > ${afterChangeSeq}
           order by m.deleted_change_seq limit ${limit})
          union all
          (select e.change_seq, e.kind, null, null, e.user_id, u.nickname, null, null, null,
                  null, null, null, e.created_at, null, e.member_count, e.expires_at
           from room_events e left join users u on u.id = e.user_id
           where e.room_id = ${roomId} and e.change_seq > ${afterChangeSeq}
           order by e.change_seq limit ${limit})
        ) changes
        order by change_seq limit ${limit}`;
      return rows.map((row): ChangeRow => ({
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
      }));
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
          and not exists (select 1 from messages m where m.room_id = r.id and m.expires_at = r.expires_at
                          and (m.change_seq > ${afterChangeSeq} or m.deleted_change_seq > ${afterChangeSeq}))`;
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
