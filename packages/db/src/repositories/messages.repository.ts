import type { Sql, TransactionSql } from 'postgres';
import type { MessageType } from '@chat/protocol';

export interface NewMessage {
  id: string;
  roomId: string;
  userId: string;
  type: MessageType;
  content: string | null;
  imageUrl: string | null;
  clientMessageId: string | null;
  createdAt: Date;
}

export interface StoredMessage extends NewMessage {
  seq: number;
  expiresAt: Date;
  isDeleted: boolean;
}

export type BatchOutcome =
  | { status: 'stored'; message: StoredMessage }
  /** A retry of an already stored `(userId, clientMessageId)`: the original comes back. */
  | { status: 'duplicate'; message: StoredMessage }
  | { status: 'room-expired' }
  | { status: 'room-missing' };

export interface HistoryRow {
  id: string;
  roomId: string;
  seq: number;
  userId: string;
  nickname: string;
  type: MessageType;
  content: string | null;
  imageUrl: string | null;
  createdAt: Date;
}

interface MessageRecord {
  id: string;
  room_id: string;
  user_id: string;
  type: MessageType;
  content: string | null;
  image_url: string | null;
  client_message_id: string | null;
  seq: number;
  created_at: Date | string;
  expires_at: Date | string;
  is_deleted: boolean;
}

/**
 * drizzle's postgres.js driver turns off the client's date parsing (it maps dates itself), so
 * raw queries on the shared client see timestamps as text.
 */
export function asDate(value: Date | string): Date {
  return value instanceof Date ? value : new Date(value);
}

function toStored(row: MessageRecord): StoredMessage {
  return {
    id: row.id,
    roomId: row.room_id,
    userId: row.user_id,
    type: row.type,
    content: row.content,
    imageUrl: row.image_url,
    clientMessageId: row.client_message_id,
    seq: row.seq,
    createdAt: asDate(row.created_at),
    expiresAt: asDate(row.expires_at),
    isDeleted: row.is_deleted,
  };
}

/**
 * Batches travel as one JSON text parameter expanded by `jsonb_to_recordset`: a fixed
 * parameter count whatever the batch size, and no reliance on the driver's array encoding.
 */
const asJson = (value: unknown) => JSON.stringify(value);

function toRecord(message: StoredMessage) {
  return {
    id: message.id,
    room_id: message.roomId,
    user_id: message.userId,
    type: message.type,
    content: message.content,
    image_url: message.imageUrl,
    client_message_id: message.clientMessageId,
    seq: message.seq,
    created_at: message.createdAt.toISOString(),
    expires_at: message.expiresAt.toISOString(),
  };
}

const dedupeKey = (userId: string, clientMessageId: string) => `${userId}\u0000${clientMessageId}`;

export function createMessagesRepository(sql: Sql) {
  /**
   * One transaction for a whole batch (group commit). It locks the batch's rooms in id order
   * (two pods never deadlock), drops retries already stored, numbers the rest from each room's
   * `last_seq` (so `seq` is gap-free in commit order), inserts them with one statement and
   * advances `last_seq`. Rooms that expired get nothing.
   */
  async function writeBatch(tx: TransactionSql, batch: readonly NewMessage[]): Promise<BatchOutcome[]> {
    const roomIds = [...new Set(batch.map((m) => m.roomId))].sort();
    const withClientId = batch.filter((m) => m.clientMessageId !== null);
    const [lockedRooms, existing] = await Promise.all([
      tx<{ id: string; last_seq: number; expires_at: Date | string; live: boolean }[]>`
        select id, last_seq, expires_at, expires_at > now() as live
        from rooms where id in (select value::uuid from jsonb_array_elements_text(${asJson(roomIds)}::text::jsonb))
        order by id for update`,
      withClientId.length === 0
        ? Promise.resolve([] as MessageRecord[])
        : tx<MessageRecord[]>`
            select m.* from messages m
            join jsonb_to_recordset(${asJson(withClientId.map((m) => ({ user_id: m.userId, client_message_id: m.clientMessageId })))}::text::jsonb)
              as k(user_id uuid, client_message_id text)
              on m.user_id = k.user_id and m.client_message_id = k.client_message_id`,
    ]);

    const rooms = new Map(lockedRooms.map((room) => [room.id, room]));
    const known = new Map(existing.map((row) => [dedupeKey(row.user_id, row.client_message_id ?? ''), toStored(row)]));
    const outcomes: (BatchOutcome | { status: 'same-as'; key: string })[] = [];
    const inserts: StoredMessage[] = [];
    const nextSeq = new Map<string, number>();

    for (const message of batch) {
      const room = rooms.get(message.roomId);
      if (!room) {
        outcomes.push({ status: 'room-missing' });
        continue;
      }
      const key = message.clientMessageId === null ? null : dedupeKey(message.userId, message.clientMessageId);
      if (key !== null && known.has(key)) {
        outcomes.push({ status: 'same-as', key });
        continue;
      }
      if (!room.live) {
        outcomes.push({ status: 'room-expired' });
        continue;
      }
      const seq = (nextSeq.get(room.id) ?? room.last_seq) + 1;
      nextSeq.set(room.id, seq);
      const stored: StoredMessage = { ...message, seq, expiresAt: asDate(room.expires_at), isDeleted: false };
      inserts.push(stored);
      if (key !== null) known.set(key, stored);
      outcomes.push({ status: 'stored', message: stored });
    }

    if (inserts.length > 0) {
      const seqs = [...nextSeq];
      await Promise.all([
        tx`
          insert into messages (id, room_id, user_id, type, content, image_url, client_message_id,
                                seq, created_at, expires_at)
          select id, room_id, user_id, type, content, image_url, client_message_id, seq,
                 created_at, expires_at
          from jsonb_to_recordset(${asJson(inserts.map(toRecord))}::text::jsonb) as x(
            id uuid, room_id uuid, user_id uuid, type text, content text, image_url text,
            client_message_id text, seq bigint, created_at timestamptz, expires_at timestamptz)`,
        tx`
          update rooms set last_seq = v.last_seq, last_message_at = now()
          from jsonb_to_recordset(${asJson(seqs.map(([id, seq]) => ({ id, last_seq: seq })))}::text::jsonb)
            as v(id uuid, last_seq bigint)
          where rooms.id = v.id`,
      ]);
    }

    return outcomes.map((outcome) => {
      if (outcome.status !== 'same-as') return outcome;
      const original = known.get(outcome.key);
      if (!original) throw new Error('duplicate without an original');
      return { status: 'duplicate', message: original };
    });
  }

  return {
    async insertBatch(batch: readonly NewMessage[]): Promise<BatchOutcome[]> {
      try {
        return await sql.begin((tx) => writeBatch(tx, batch));
      } catch (error) {
        // The same (user, clientMessageId) committed concurrently for another room: the unique
        // key stopped it; once more, and the dedupe read sees the committed original.
        if ((error as { code?: string }).code === '23505') {
          return await sql.begin((tx) => writeBatch(tx, batch));
        }
        throw error;
      }
    },

    async findByClientMessageId(userId: string, clientMessageId: string): Promise<StoredMessage | null> {
      const rows = await sql<MessageRecord[]>`
        select * from messages where user_id = ${userId} and client_message_id = ${clientMessageId}`;
      return rows[0] ? toStored(rows[0]) : null;
    },

    async find(id: string): Promise<StoredMessage | null> {
      const rows = await sql<MessageRecord[]>`select * from messages where id = ${id}`;
      return rows[0] ? toStored(rows[0]) : null;
    },

    /** Soft delete by its author; false when it was already deleted meanwhile. */
    async softDelete(id: string, userId: string): Promise<boolean> {
      const rows = await sql`
        update messages set is_deleted = true
        where id = ${id} and user_id = ${userId} and is_deleted = false
        returning id`;
      return rows.length > 0;
    },

    /**
     * A page of live messages as a keyset range read on (room_id, seq), strictly between
     * `afterSeq` and `beforeSeq` when given: `order: 'newest'` reads downwards from the top,
     * `'oldest'` upwards from the bottom. Ask for one more row than shown to learn `hasMore`.
     */
    async page(
      roomId: string,
      options: { afterSeq: number | null; beforeSeq: number | null; order: 'newest' | 'oldest'; limit: number },
    ): Promise<HistoryRow[]> {
      const { afterSeq, beforeSeq, order, limit } = options;
      const rows = await sql<
        {
          id: string;
          room_id: string;
          seq: number;
          user_id: string;
          nickname: string;
          type: MessageType;
          content: string | null;
          image_url: string | null;
          created_at: Date | string;
        }[]
      >`
        select m.id, m.room_id, m.seq, m.user_id, u.nickname, m.type, m.content, m.image_url,
               m.created_at
        from messages m join users u on u.id = m.user_id
        where m.room_id = ${roomId} and m.is_deleted = false
          ${afterSeq === null ? sql`` : sql`and m.seq > ${afterSeq}`}
          ${beforeSeq === null ? sql`` : sql`and m.seq < ${beforeSeq}`}
        order by m.seq ${order === 'newest' ? sql`desc` : sql`asc`}
        limit ${limit}`;
      return rows.map((row) => ({
        id: row.id,
        roomId: row.room_id,
        seq: row.seq,
        userId: row.user_id,
        nickname: row.nickname,
        type: row.type,
        content: row.content,
        imageUrl: row.image_url,
        createdAt: asDate(row.created_at),
      }));
    },
  };
}

export type MessagesRepository = ReturnType<typeof createMessagesRepository>;
