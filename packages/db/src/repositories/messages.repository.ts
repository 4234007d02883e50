import type { Sql } from 'postgres';
import type { MessageType } from '@chat/protocol';
import type { SenderKind } from '../schema.ts';
import { SEND_AT_ONCE_PADDING, durabilityBarrier } from './durability-barrier.ts';
import { storedExpiries } from './room-expiries.ts';
import { uuidArrayLiteral } from './uuid-array.ts';

export interface NewMessage {
  id: string;
  roomId: string;
  userId: string;
  type: MessageType;
  content: string | null;
  imageUrl: string | null;
  clientMessageId: string | null;
  createdAt: Date;
  /**
   * Whether the sender must be a member of the room for the message to be stored: true for a
   * user's send, checked by the batch statement against `room_members` in its own snapshot
   * (PROTOCOL §4: a send requires membership); false for the server API's bot / system
   * senders, which are never members (§17).
   */
  requireMember: boolean;
}

export interface StoredMessage extends Omit<NewMessage, 'requireMember'> {
  seq: number;
  /** The `message-stored` change's number in the room's change feed. */
  changeSeq: number;
  /** The expiry it is stored under: its room's when it was sent (the room's may have moved since). */
  expiresAt: Date;
  isDeleted: boolean;
}

/** A message read by id, with its room's expiry as it is now (extended or closed since the send, or not). */
export interface FoundMessage extends StoredMessage {
  roomExpiresAt: Date;
}

export type BatchOutcome =
  | { status: 'stored'; message: StoredMessage }
  /** A retry of an already stored `(userId, clientMessageId)`: the original comes back. */
  | { status: 'duplicate'; message: StoredMessage }
  | { status: 'room-expired' }
  | { status: 'room-missing' }
  /** `requireMember` and the sender is not a member of the room: nothing stored, no seq taken. */
  | { status: 'not-member' };

export interface HistoryRow {
  id: string;
  roomId: string;
  seq: number;
  userId: string;
  nickname: string;
  /** `user`, or the bot / system sender (and its id) of a server API publish. */
  senderKind: SenderKind;
  senderId: string | null;
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
  change_seq: number;
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

/**
 * A message of a batch as stored, built property by property: on every send, the literal
 * `{ ...message, seq, … }` cost 4-7 µs (V8 builds a spread literal that gains properties after
 * the spread slowly) against well under 1 µs.
 */
function storedMessage(message: NewMessage, seq: number, changeSeq: number, expiresAt: Date): StoredMessage {
  return {
    id: message.id,
    roomId: message.roomId,
    userId: message.userId,
    type: message.type,
    content: message.content,
    imageUrl: message.imageUrl,
    clientMessageId: message.clientMessageId,
    createdAt: message.createdAt,
    seq,
    changeSeq,
    expiresAt,
    isDeleted: false,
  };
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
    changeSeq: row.change_seq,
    createdAt: asDate(row.created_at),
    expiresAt: asDate(row.expires_at),
    isDeleted: row.is_deleted,
  };
}

/**
 * The row counts a history page statement is written with (its LIMIT is a literal: see
 * `page`): a page of `limit` rows reads the smallest that holds it and drops the rest. A
 * prepared statement with its generic plan costs the backend about 120 KB (measured on the
 * partitioned `messages`); one per limit a client may ask for (1–101, in four shapes of
 * cursor) could take tens of MB per connection, these few take about 2 MB. 51 is the default
 * page (50) plus the row that tells `hasMore`.
 */
const PAGE_FETCH_SIZES = [11, 21, 51, 101] as const;

function pageFetchSize(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`not a row limit: ${limit}`);
  return PAGE_FETCH_SIZES.find((size) => size >= limit) ?? limit;
}

/**
 * Batches travel as one JSON text parameter expanded by `json_to_recordset`: a fixed
 * parameter count whatever the batch size, and no reliance on the driver's array encoding.
 * (`json`, not `jsonb`: the text is read once, without building the binary form first.)
 */
const asJson = (value: unknown) => JSON.stringify(value);

const dedupeKey = (userId: string, clientMessageId: string) => `${userId}\u0000${clientMessageId}`;

/** Whether a `(userId, clientMessageId)` comes twice in the batch (a retry sent before its original was answered). */
function repeatsWithin(batch: readonly NewMessage[]): boolean {
  const seen = new Set<string>();
  for (const message of batch) {
    if (message.clientMessageId === null) continue;
    const key = dedupeKey(message.userId, message.clientMessageId);
    if (seen.has(key)) return true;
    seen.add(key);
  }
  return false;
}

/**
 * The FROM items of a batch statement's `locked`: the batch's rooms (`roomIds`, a
 * uuidArrayLiteral), row-locked in id order so that two pods' batches never deadlock, as `r`.
 * Each room is a lookup of its own (a lateral `id = q.id`): a plain `id = any(<ids>)` is
 * planned for an array of unknown length, estimated at ten ids, and below ~1,500 rooms in
 * the table Postgres read all of `rooms` for it on every batch instead of probing the primary
 * key (bench:batch, 1,000 rooms: 445-450 µs of backend CPU per batch of 3 against 325-329).
 * Per lookup it picks what a one-row lookup needs: the index, or a scan of a one-page table.
 * The ids are sorted before the nested loop, which keeps that order as it locks. A row
 * another pod's batch updated meanwhile is re-checked against its own `id = q.id` alone.
 *
 * Whether a locked room is live is judged by the clock once its lock is held
 * (`clock_timestamp()` in the select over these rows, computed after the lateral lock), not by
 * `now()`, the statement's start: a batch that queued behind the server API's close (which sets
 * `expires_at` to the moment it got the lock, later than this statement's start) would
 * otherwise store its messages in the closed room, numbered after its `room-lifetime-changed`.
 */
const lockRoomsInIdOrder = (db: Sql, roomIds: string) => db`
  (select id from unnest((select ${roomIds}::text::uuid[])::uuid[]) as u(id) order by id) q
  cross join lateral (select id, last_seq, last_change_seq, expires_at from rooms where rooms.id = q.id for update) r`;

export interface MessagesRepositoryOptions {
  /**
   * Early lock release for the group commit: a connection (one, so statements run in the order
   * sent) with `synchronous_commit = off`. Each batch statement commits on it without waiting
   * for its WAL flush, which releases the rooms' row locks at once, and a durability barrier
   * sent right behind it returns only once the WAL is flushed past the
   * batch's commit record: `insertBatch` still resolves only when the batch is durable. A pod
   * no longer holds a room's lock through its fsync, so the pods writing one room stop queuing
   * their fsyncs one behind another on that lock (hot rooms), and their flushes can be shared.
   * `seq` stays gap-free in commit order (numbers are still handed out under the row lock).
   * What changes: for the moment between that commit and the flush, other sessions can read
   * the batch's rows while they are not yet durable; if Postgres crashed right then they would
   * be gone, never acknowledged nor broadcast (a later batch that read them would be gone too:
   * the WAL is flushed in order).
   *
   * What holds that connection (a `Database`), read at each batch: the gateway's writer opens a
   * fresh one when a batch stalls (infrastructure/writer-connection.ts).
   */
  batchConnection?: { readonly sql: Sql };
}

/** How a batch is made durable on the writer's connection (`batchConnection`); see `insertBatch`. */
export interface BatchWriteOptions {
  /**
   * true (the default): commit asynchronously, releasing the rooms' row locks at once, then the
   * durability barrier. false: the statement commits synchronously itself (its rooms' locks are
   * held through the WAL flush) and no barrier follows: one query per batch instead of two, for
   * batches whose rooms no other pod is likely to be writing at that moment.
   */
  releaseLocksEarly?: boolean;
}

export function createMessagesRepository(sql: Sql, options: MessagesRepositoryOptions = {}) {
  /**
   * Whether a batch statement turns `synchronous_commit` on for its own transaction: when it is
   * to be durable by itself on the writer's asynchronous connection (no barrier behind it).
   */
  const commitsDurably = (write: BatchWriteOptions) => options.batchConnection !== undefined && write.releaseLocksEarly === false;
  /**
   * The statement, then on the same connection the durability barrier, when that connection
   * commits asynchronously and the batch releases its locks early; otherwise the statement is
   * durable by itself (`commitsDurably`).
   */
  async function durably<T>(statement: (db: Sql) => Promise<T>, write: BatchWriteOptions): Promise<T> {
    if (!options.batchConnection) return statement(sql);
    // As of now: the connection may have been replaced since the last batch.
    const batchSql = options.batchConnection.sql;
    if (write.releaseLocksEarly === false) return statement(batchSql);
    // Pipelined: written right behind the statement (SEND_AT_ONCE_PADDING, and no Nagle on the
    // connection: patches/), one round trip for both.
    const [result] = await Promise.all([statement(batchSql), durabilityBarrier(batchSql)]);
    return result;
  }

  /** A message as the batch statements' JSON input names its columns. */
  function batchRowOf(message: NewMessage) {
    return {
      id: message.id,
      room_id: message.roomId,
      user_id: message.userId,
      type: message.type,
      content: message.content,
      image_url: message.imageUrl,
      client_message_id: message.clientMessageId,
      created_at: message.createdAt.toISOString(),
    };
  }

  /**
   * The form for a batch that holds a retry (`writeFreshBatch` found one, or the batch repeats a
   * `clientMessageId`): it answers every message, the original for a retry. A whole batch (group
   * commit) as ONE statement, so one round trip and one implicit transaction: lock the batch's
   * rooms in id order (two pods never deadlock), drop retries
   * already stored (and repeats within the batch), number the rest from each room's `last_seq`
   * (gap-free in commit order: a statement that fails leaves no number behind), insert them
   * and advance `last_seq`. Rooms that expired get nothing, and nor does a message whose sender
   * must be a member (`requireMember`) and is not one in the statement's snapshot (`outsiders`,
   * answered `not-member`): it takes no number, so `seq` stays gap-free.
   *
   * Membership is checked here, where it lives, and not only by the gateway: a socket is in the
   * room's channel while its user is a member, but a leave made on another pod moves the socket
   * out through the bus a moment after the leave is answered, and a send from that socket in
   * that moment was stored (9 of 25 in review). The check reads the statement's snapshot, taken
   * when it starts, before its room locks are granted: a leave that commits after that (a leave
   * and a send made at the same moment, neither after the other's answer) may still let the
   * message through, numbered after the leave's change in the feed; a send made after the leave
   * was answered never is.
   *
   * Change feed (issue 20): each stored message is also the room's next change, numbered from
   * `last_change_seq` in the same way and in the same statement (the `change_seq` column of
   * its own row, so a send writes no second row); `advanced` moves both counters. Every other
   * change of a room (membership, expiry, deletes) advances `last_change_seq` while holding the
   * same row lock, so the two kinds of numbering never interleave wrongly.
   *
   * The dedupe read shares the statement's snapshot, taken before the room lock is granted: a
   * retry committed by another pod in between is stopped by the unique key (23505), and the
   * caller runs the batch once more with a fresh snapshot. The dedupe read is one index probe
   * per input row (LATERAL … LIMIT 1, which the planner cannot turn into a join): as a plain
   * semi-join it was planned as a scan of all of `messages` whenever the table's statistics
   * were small or stale, e.g. in the first minutes of a new database. `messages` is
   * partitioned by day (docs/partitions.md): that probe looks in every day partition (a retry
   * is recognised whatever its room), a handful of index probes; the insert routes each row to
   * its room's day, and all of a room's rows share one, so `seq` stays unique per room.
   *
   * The rooms are locked one lookup each (`lockRoomsInIdOrder`): when a row the lock waits for
   * was updated by another pod's batch, Postgres re-checks just that lookup, not a join against
   * the whole batch (which costs CPU per conflicting row). The id array in a sub-select (an
   * init plan) is parsed once per statement, where a bare `$ids::text::uuid[]` was parsed again
   * for every row it was compared with (a tenth of the statement's CPU in batches of 24 over 60
   * rooms). The update of the counters joins the rooms of the stored messages: below some
   * thousand rooms Postgres reads the whole table for it, which this form, run only for batches
   * holding a retry, can afford (test/storage/batch-statement-plan.test.ts covers the plain form,
   * and that neither form reads all of `room_members`).
   */
  async function writeDedupedBatch(batch: readonly NewMessage[], write: BatchWriteOptions): Promise<BatchOutcome[]> {
    const input = batch.map((message, ord) => ({ ord, ...batchRowOf(message), require_member: message.requireMember }));
    const roomIds = uuidArrayLiteral(batch.map((message) => message.roomId));
    const syncCommit = commitsDurably(write);
    const [result] = await durably((db) => db<
      {
        rooms: { id: string; last_seq: number; expires_at: string; live: boolean }[];
        existing: MessageRecord[];
        outsiders: number[];
        stored: { ord: number; seq: number; change_seq: number }[];
      }[]
    >`
      with durability as (
        -- this transaction waits for its WAL flush at COMMIT when asked to (commitsDurably)
        select case when ${syncCommit}::boolean then set_config('synchronous_commit', 'on', true) = 'on' else true end as durable,
               ${SEND_AT_ONCE_PADDING}::text as padding
      ), input as (
        select * from json_to_recordset(${asJson(input)}::text::json) as x(
          ord int, id uuid, room_id uuid, user_id uuid, type text, content text, image_url text,
          client_message_id text, created_at timestamptz, require_member boolean)
      ), locked as (
        select r.id, r.last_seq, r.last_change_seq, r.expires_at, r.expires_at > clock_timestamp() as live
        from ${lockRoomsInIdOrder(db, roomIds)}
      ), existing as (
        select distinct m.* from input i
        cross join lateral (
          select * from messages m
          where m.user_id = i.user_id and m.client_message_id = i.client_message_id
          limit 1
        ) m
        where i.client_message_id is not null
      ), outsiders as (
        -- messages whose sender must be a member and is not, in this statement's snapshot: one
        -- probe of room_members' primary key each (a lateral LIMIT 1, never a join over the table)
        select i.ord from input i
        left join lateral (
          select true as found from room_members rm
          where rm.room_id = i.room_id and rm.user_id = i.user_id
          limit 1
        ) rm on true
        where i.require_member and rm.found is null
      ), fresh as (
        select distinct on (i.user_id, coalesce(i.client_message_id, i.id::text)) i.*
        from input i join locked l on l.id = i.room_id
        where l.live and not exists (
          select 1 from existing e
          where e.user_id = i.user_id and e.client_message_id = i.client_message_id)
          and not exists (select 1 from outsiders o where o.ord = i.ord)
        order by i.user_id, coalesce(i.client_message_id, i.id::text), i.ord
      ), numbered as (
        select f.*, l.last_seq + row_number() over (partition by f.room_id order by f.ord) as seq,
               -- change feed: the same rank from the room's change counter
               l.last_change_seq + row_number() over (partition by f.room_id order by f.ord) as change_seq,
               l.expires_at
        from fresh f join locked l on l.id = f.room_id
      ), inserted as (
        insert into messages (id, room_id, user_id, type, content, image_url, client_message_id,
                              seq, change_seq, created_at, expires_at)
        select id, room_id, user_id, type, content, image_url, client_message_id, seq,
               change_seq, created_at, expires_at
        from numbered
        returning id
      ), advanced as (
        update rooms set last_seq = n.last_seq, last_change_seq = n.last_change_seq, last_message_at = now()
        from (select room_id, max(seq) as last_seq, max(change_seq) as last_change_seq
              from numbered group by room_id) n
        where rooms.id = n.room_id
      )
      select
        (select durable from durability) as durable,
        (select coalesce(json_agg(json_build_object(
           'id', id, 'last_seq', last_seq, 'expires_at', expires_at, 'live', live)), '[]')
         from locked) as rooms,
        (select coalesce(json_agg(e), '[]') from existing e) as existing,
        (select coalesce(json_agg(ord), '[]') from outsiders) as outsiders,
        (select coalesce(json_agg(json_build_object('ord', ord, 'seq', seq, 'change_seq', change_seq)), '[]')
         from numbered where id in (select id from inserted)) as stored`, write);
    if (!result) throw new Error('batch statement returned no row');

    const rooms = new Map(result.rooms.map((room) => [room.id, room]));
    const storedByOrd = new Map(result.stored.map((row) => [row.ord, row]));
    const outsiders = new Set(result.outsiders);
    const known = new Map(
      result.existing.map((row) => [dedupeKey(row.user_id, row.client_message_id ?? ''), toStored(row)]),
    );

    return batch.map((message, ord): BatchOutcome => {
      const room = rooms.get(message.roomId);
      if (!room) return { status: 'room-missing' };
      const key = message.clientMessageId === null ? null : dedupeKey(message.userId, message.clientMessageId);
      const numbers = storedByOrd.get(ord);
      if (numbers !== undefined) {
        const stored = storedMessage(message, numbers.seq, numbers.change_seq, asDate(room.expires_at));
        if (key !== null) known.set(key, stored);
        return { status: 'stored', message: stored };
      }
      // Not inserted: an earlier original (stored before, or earlier in this batch: `known` is
      // filled in batch order, and a repeat always comes after its first occurrence)…
      const original = key === null ? undefined : known.get(key);
      if (original) return { status: 'duplicate', message: original };
      // …or a room that had expired (PROTOCOL §6: expiry is answered before membership)…
      if (!room.live) return { status: 'room-expired' };
      // …or a sender who is not a member.
      if (outsiders.has(ord)) return { status: 'not-member' };
      throw new Error('message neither stored nor explained');
    });
  }

  /**
   * A batch that holds no retry: no `(userId, clientMessageId)` twice in it (the caller checks)
   * and none already stored (the statement checks), and no sender who must be a member and is
   * not (the statement checks). The same room locks in id order and the same
   * gap-free numbering, without the sort and window function that number the survivors or the
   * per-row JSON answer. Every message of a live room is stored, so its `seq` is known before the
   * statement runs: the room's `last_seq` plus its place among the batch's messages to that room
   * (`k`). The statement answers only the locked rooms; a room it does not return does not exist.
   *
   * Retries are rare, so the statement assumes there is none and checks: one index probe per
   * message that carries a `clientMessageId` (as `writeDedupedBatch` reads them, in every day
   * partition). Senders who are not members are rarer still (the gateway refuses a socket that is
   * not in the room before it queues the message), so it assumes every sender that must be a
   * member (`requireMember`) is one, and checks: one probe of `room_members`' primary key per
   * (room, sender) of the batch, in the statement's snapshot (see `writeDedupedBatch`). If either
   * check fails it writes nothing (its room locks are released at its commit) and answers
   * `deferred`, and this returns null: the caller runs `writeDedupedBatch`, which answers each
   * message. Batches whose messages all carry a new `clientMessageId` (what
   * the web page sends) cost the backend 1.32-1.42× a batch without ids through
   * `writeDedupedBatch`, 1.07-1.23× this way (`bench:batch --forms plain,ids`, sizes 3 and 16,
   * the two versions run alternately).
   * A retry committed by another pod after this statement's snapshot is stopped by the unique
   * key (23505), as in `writeDedupedBatch`.
   */
  async function writeFreshBatch(batch: readonly NewMessage[], write: BatchWriteOptions): Promise<BatchOutcome[] | null> {
    const perRoom = new Map<string, number>();
    const input = batch.map((message) => {
      const k = (perRoom.get(message.roomId) ?? 0) + 1;
      perRoom.set(message.roomId, k);
      return { ...batchRowOf(message), k };
    });
    const roomIds = [...perRoom.keys()];
    const keys = batch.flatMap((message) =>
      message.clientMessageId === null ? [] : [{ user_id: message.userId, client_message_id: message.clientMessageId }],
    );
    // The (room, sender) pairs whose membership the statement checks, each once.
    const memberships = new Map<string, { room_id: string; user_id: string }>();
    for (const message of batch) {
      if (message.requireMember) memberships.set(`${message.roomId}\u0000${message.userId}`, { room_id: message.roomId, user_id: message.userId });
    }
    const syncCommit = commitsDurably(write);
    const answer = await durably((db) => db<{ id: string | null; last_seq: number; last_change_seq: number; expires_at: Date | string; live: boolean; deferred: boolean }[]>`
      with durability as (
        -- this transaction waits for its WAL flush at COMMIT when asked to (commitsDurably);
        -- one row always, so that it runs whatever the rooms
        select case when ${syncCommit}::boolean then set_config('synchronous_commit', 'on', true) = 'on' else true end as durable,
               ${SEND_AT_ONCE_PADDING}::text as padding
      ), locked as (
        select r.id, r.last_seq, r.last_change_seq, r.expires_at, r.expires_at > clock_timestamp() as live
        from ${lockRoomsInIdOrder(db, uuidArrayLiteral(roomIds))}
      ), deferred as (
        -- a message of the batch already stored: then nothing is written. (After "locked" in
        -- the text: the statement locks rooms before messages, as docs/partitions.md needs.)
        select exists (
          select 1 from json_to_recordset(${asJson(keys)}::text::json) as c(user_id uuid, client_message_id text)
          cross join lateral (
            select 1 from messages m
            where m.user_id = c.user_id and m.client_message_id = c.client_message_id
            limit 1
          ) m
        ) or exists (
          -- a sender who must be a member and is not (in this statement's snapshot): then too
          -- nothing is written, and the dedupe form answers each message. One probe of
          -- room_members' primary key per (room, sender), as lateral as the one above.
          select 1 from json_to_recordset(${asJson([...memberships.values()])}::text::json) as p(room_id uuid, user_id uuid)
          left join lateral (
            select true as found from room_members rm
            where rm.room_id = p.room_id and rm.user_id = p.user_id
            limit 1
          ) rm on true
          where rm.found is null
        ) as found
      ), counts as (
        select * from json_to_recordset(${asJson(roomIds.map((id) => ({ id, n: perRoom.get(id) })))}::text::json) as c(id uuid, n int)
      ), advanced as (
        update rooms set last_seq = l.last_seq + c.n, last_change_seq = l.last_change_seq + c.n, last_message_at = now()
        from locked l join counts c on c.id = l.id
        where rooms.id = l.id and l.live and not (select found from deferred)
      ), inserted as (
        insert into messages (id, room_id, user_id, type, content, image_url, client_message_id, seq, change_seq, created_at, expires_at)
        select i.id, i.room_id, i.user_id, i.type, i.content, i.image_url, i.client_message_id,
               l.last_seq + i.k, l.last_change_seq + i.k, i.created_at, l.expires_at
        from json_to_recordset(${asJson(input)}::text::json) as i(
          id uuid, room_id uuid, user_id uuid, type text, content text, image_url text,
          client_message_id text, created_at timestamptz, k int)
        join locked l on l.id = i.room_id
        where l.live and not (select found from deferred)
      )
      select l.id, l.last_seq, l.last_change_seq, l.expires_at, l.live, (select found from deferred) as deferred
      from durability left join locked l on true`, write);
    if (answer[0]?.deferred) return null;
    // expires_at parsed once per room, not once per message
    const byId = new Map(
      answer.flatMap((room) =>
        room.id === null ? [] : [[room.id, { live: room.live, lastSeq: room.last_seq, lastChangeSeq: room.last_change_seq, expiresAt: asDate(room.expires_at) }] as const],
      ),
    );
    return batch.map((message, ord): BatchOutcome => {
      const room = byId.get(message.roomId);
      if (!room) return { status: 'room-missing' };
      if (!room.live) return { status: 'room-expired' };
      const k = input[ord]!.k;
      return { status: 'stored', message: storedMessage(message, room.lastSeq + k, room.lastChangeSeq + k, room.expiresAt) };
    });
  }

  return {
    async insertBatch(batch: readonly NewMessage[], write: BatchWriteOptions = {}): Promise<BatchOutcome[]> {
      try {
        const fresh = repeatsWithin(batch) ? null : await writeFreshBatch(batch, write);
        return fresh ?? (await writeDedupedBatch(batch, write));
      } catch (error) {
        // The same (user, clientMessageId) committed concurrently by another pod: the unique
        // key stopped it; once more, and the dedupe read sees the committed original.
        if ((error as { code?: string }).code === '23505') {
          return await writeDedupedBatch(batch, write);
        }
        throw error;
      }
    },

    async findByClientMessageId(userId: string, clientMessageId: string): Promise<StoredMessage | null> {
      const rows = await sql<MessageRecord[]>`
        select * from messages where user_id = ${userId} and client_message_id = ${clientMessageId}`;
      return rows[0] ? toStored(rows[0]) : null;
    },

    /** Null too when its room is gone (a deleted tombstone). */
    async find(id: string): Promise<FoundMessage | null> {
      const rows = await sql<(MessageRecord & { room_expires_at: Date | string })[]>`
        select m.*, r.expires_at as room_expires_at from messages m join rooms r on r.id = m.room_id where m.id = ${id}`;
      return rows[0] ? { ...toStored(rows[0]), roomExpiresAt: asDate(rows[0].room_expires_at) } : null;
    },

    /**
     * Soft delete by its author: the room's next change (`message-deleted`), numbered in the
     * same transaction. The room row is locked first, as every numbering statement does, so the
     * number is only taken when the message really changes (a concurrent delete of the same
     * message waits, then finds it deleted and takes nothing). Null when it was already deleted,
     * or when the room has expired by the time its lock is held: a delete that queued behind the
     * server API's close (or the sweep's `room-expired`) is re-checked on the updated row with the
     * clock of that moment (`clock_timestamp()`, not the transaction's start), so it never lands
     * in the feed after the room ended.
     */
    async softDelete(id: string, userId: string): Promise<{ roomId: string; changeSeq: number } | null> {
      return sql.begin(async (tx) => {
        const [target] = await tx<{ room_id: string }[]>`
          select r.id as room_id from messages m join rooms r on r.id = m.room_id
          where m.id = ${id} and m.user_id = ${userId} and m.is_deleted = false
            and r.expires_at > clock_timestamp()
          for update of r`;
        if (!target) return null;
        const [row] = await tx<{ change_seq: number }[]>`
          with deleted as (
            update messages set is_deleted = true,
              deleted_change_seq = (select last_change_seq + 1 from rooms where id = ${target.room_id})
            where id = ${id} and user_id = ${userId} and is_deleted = false
            returning room_id
          )
          update rooms set last_change_seq = last_change_seq + 1
          where id = ${target.room_id} and exists (select 1 from deleted)
          returning last_change_seq as change_seq`;
        return row ? { roomId: target.room_id, changeSeq: row.change_seq } : null;
      });
    },

    /**
     * A page of live messages as a keyset range read on (room_id, seq), strictly between the
     * messages `afterId` and `beforeId` when given (history cursors are message ids):
     * `order: 'newest'` reads downwards from the top, `'oldest'` upwards from the bottom. Ask for
     * one more row than shown to learn `hasMore`. The expiries the room's messages are stored
     * under (`storedExpiries`: the room's, and an earlier one the partition job has not emptied
     * after an extend) name their day partitions: the range is read on each of those, the other
     * days pruned when the statement runs instead of one empty index probe each, and the rows
     * merged. A message moved by the job meanwhile is in one of them in any one snapshot, never
     * in two, and its expiry is listed until the last row has left it. `missingAnchor` names a cursor that is no message of the room (`before` first).
     *
     * A cursor is looked up in the same statement as the page (a one-row select whose `seq`
     * bounds a lateral page read), not by a query before it: one round trip for every page a
     * client scrolls back through, where there were two (and two wake-ups of the gateway, which
     * is what a page's p99 is made of on a busy machine). The one row is there even when the page
     * is empty, with the cursors' `seq` (null: not found) and no message.
     *
     * Postgres keeps replanning a prepared statement whose generic plan looks costlier than its
     * custom plans, and every page then paid a full plan over the partitions and their indexes
     * (0.4-1.1 ms of planning for ~0.1 ms of executing, at 1M messages). Two things made the
     * generic plan look costlier: a `LIMIT $n` (costed as 10% of the room's rows), hence LIMIT
     * is written into the statement, one of a few fetch sizes (PAGE_FETCH_SIZES) so that few
     * statements are prepared; and the room id as a plain parameter, which a custom plan
     * estimates from the column's statistics (a room of a million messages among small ones:
     * its plan looks far cheaper than the generic one's estimate for an average room, so a busy
     * database never switched). The room id goes in as `(select $id::uuid)`, a value no plan
     * knows in advance: custom and generic plans estimate alike, the same plan, and the generic
     * one is kept after five executions.
     */
    async page(
      roomId: string,
      options: { afterId: string | null; beforeId: string | null; order: 'newest' | 'oldest'; limit: number },
    ): Promise<{ rows: HistoryRow[]; missingAnchor: 'before' | 'after' | null }> {
      const { afterId, beforeId, order, limit } = options;
      type PageRecord = {
        id: string | null;
        room_id: string;
        seq: number;
        user_id: string;
        nickname: string;
        sender_kind: SenderKind;
        sender_id: string | null;
        type: MessageType;
        content: string | null;
        image_url: string | null;
        created_at: Date | string;
        before_seq?: number | null;
        after_seq?: number | null;
      };
      const roomExpiries = sql`(select ${storedExpiries(sql, 'r')} as expires_at from rooms r where r.id = ${roomId}) d`;
      const anchorSeq = (id: string) => sql`
        (select found.seq from ${roomExpiries}
         cross join lateral (select seq from messages where id = ${id} and room_id = ${roomId} and expires_at = d.expires_at limit 1) found
         limit 1)`;
      const direction = order === 'newest' ? sql`desc` : sql`asc`;
      const fetch = sql.unsafe(`limit ${pageFetchSize(limit)}`);
      // Per expiry the room's messages are stored under (usually one), the page's range read on
      // that partition alone; then the best of those.
      const pageRead = (bounds: ReturnType<typeof sql>) => sql`
        select part.* from ${roomExpiries} cross join lateral (
          select m.id, m.room_id, m.seq, m.user_id, u.nickname, u.kind as sender_kind,
                 u.external_id as sender_id, m.type, m.content, m.image_url, m.created_at
          from messages m join users u on u.id = m.user_id
          where m.room_id = (select ${roomId}::uuid) and m.is_deleted = false and m.expires_at = d.expires_at ${bounds}
          order by m.seq ${direction} ${fetch}) part
        order by part.seq ${direction} ${fetch}`;
      const records =
        afterId === null && beforeId === null
          ? await sql<PageRecord[]>`${pageRead(sql``)}`
          : await sql<PageRecord[]>`
              select a.before_seq, a.after_seq, p.* from (
                select ${beforeId === null ? sql`null::int` : anchorSeq(beforeId)} as before_seq,
                       ${afterId === null ? sql`null::int` : anchorSeq(afterId)} as after_seq
              ) a left join lateral (${pageRead(sql`
                ${beforeId === null ? sql`` : sql`and m.seq < a.before_seq`}
                ${afterId === null ? sql`` : sql`and m.seq > a.after_seq`}`)}) p on true`;
      const anchors = records[0];
      if (beforeId !== null && (anchors?.before_seq ?? null) === null) return { rows: [], missingAnchor: 'before' };
      if (afterId !== null && (anchors?.after_seq ?? null) === null) return { rows: [], missingAnchor: 'after' };
      const rows = records.flatMap((row): HistoryRow[] =>
        row.id === null
          ? []
          : [
              {
                id: row.id,
                roomId: row.room_id,
                seq: row.seq,
                userId: row.user_id,
                nickname: row.nickname,
                senderKind: row.sender_kind,
                senderId: row.sender_id,
                type: row.type,
                content: row.content,
                imageUrl: row.image_url,
                createdAt: asDate(row.created_at),
              },
            ],
      );
      return { rows: rows.slice(0, limit), missingAnchor: null };
    },

    /**
     * Of `roomIds`, those whose newest message (deleted or not) was sent by one of `userIds`
     * no later than `notAfter`: a room with a newer message than that has been broadcast to
     * since, so its members have seen the `seq` move on. One index probe per room and expiry its
     * messages are stored under (`storedExpiries`), each pruned to that expiry's day partition.
     */
    async roomsLastWrittenBy(roomIds: readonly string[], userIds: readonly string[], notAfter: Date): Promise<string[]> {
      if (roomIds.length === 0 || userIds.length === 0) return [];
      const rows = await sql<{ room_id: string }[]>`
        select r.room_id from unnest(${uuidArrayLiteral(roomIds)}::text::uuid[]) as r(room_id)
        join rooms on rooms.id = r.room_id
        cross join lateral (
          select n.user_id, n.created_at from ${storedExpiries(sql, 'rooms')} as d(expires_at)
          cross join lateral (
            select m.seq, m.user_id, m.created_at from messages m
            where m.room_id = r.room_id and m.expires_at = d.expires_at
            order by m.seq desc limit 1
          ) n
          order by n.seq desc limit 1
        ) newest
        where newest.user_id in (select unnest(${uuidArrayLiteral(userIds)}::text::uuid[]))
          and newest.created_at <= ${notAfter.toISOString()}::timestamptz`;
      return rows.map((row) => row.room_id);
    },
  };
}

export type MessagesRepository = ReturnType<typeof createMessagesRepository>;
