import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import { MESSAGE_TYPES, ROOM_EVENT_KINDS } from '@chat/protocol';

const timestamps = (name: string) => timestamp(name, { withTimezone: true, precision: 3 });

/** Who may send: a person (a JWT's `sub`), or a bot / system sender of the server API. */
export const SENDER_KINDS = ['user', 'bot', 'system'] as const;
export type SenderKind = (typeof SENDER_KINDS)[number];

export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey(),
    nickname: text('nickname').notNull(),
    /** `user` for people; `bot` / `system` for senders the server API publishes as. */
    kind: text('kind', { enum: SENDER_KINDS }).notNull().default('user'),
    /** For a bot / system sender: the id the backend named it by (its row id is derived from it). */
    externalId: text('external_id'),
    createdAt: timestamps('created_at').notNull().defaultNow(),
    updatedAt: timestamps('updated_at').notNull().defaultNow(),
  },
  (table) => [check('users_kind_valid', sql`${table.kind} in ('user', 'bot', 'system')`)],
);

export const rooms = pgTable(
  'rooms',
  {
    id: uuid('id').primaryKey(),
    name: text('name').notNull(),
    createdBy: uuid('created_by')
      .notNull()
      .references(() => users.id),
    memberCount: integer('member_count').notNull().default(0),
    /** The last `seq` handed out in this room; advanced in the message insert transaction. */
    lastSeq: bigint('last_seq', { mode: 'number' }).notNull().default(0),
    /**
     * The last `changeSeq` handed out in this room (the change feed, PROTOCOL §16): every
     * statement that changes the room advances it while holding the row's lock, so numbers are
     * gap-free and commit in order.
     */
    lastChangeSeq: bigint('last_change_seq', { mode: 'number' }).notNull().default(0),
    /** The occupancy last recorded in the feed (room-occupied / room-vacated). */
    occupied: boolean('occupied').notNull().default(false),
    createdAt: timestamps('created_at').notNull(),
    expiresAt: timestamps('expires_at').notNull(),
    /** Set by the expiry sweep once its rows are purged; the row stays as a tombstone. */
    expiredAt: timestamps('expired_at'),
    /** Set once `room-expiring` has been announced. */
    expiringNotifiedAt: timestamps('expiring_notified_at'),
    /**
     * Set once the sweep's `room-expired` has been taken by the bus: only then is the room marked
     * expired (a record whose publish failed is announced again, migration 0012).
     */
    expiryAnnouncedAt: timestamps('expiry_announced_at'),
    /** Advanced with `last_seq` in the message transaction: no extra write per message. */
    lastMessageAt: timestamps('last_message_at'),
    /**
     * The room has changes some webhook endpoint may not have had yet. Raised by a trigger when
     * `last_change_seq` moves (migration 0004), lowered by the webhook dispatch once every
     * endpoint is caught up: the dispatch reads pending rooms by index, not every room.
     */
    webhookPending: boolean('webhook_pending').notNull().default(false),
    /**
     * Expiries the room had before `expires_at` under which some of its messages are still
     * stored (their partition key, docs/partitions.md): an extend or close only appends the old
     * expiry here (migration 0013), and the worker's partition job moves those messages to the
     * room's expiry (or deletes them once the room is expired) in short batches, removing an
     * expiry once it holds none. Never holds `expires_at` itself. Reads look in every expiry
     * listed, each pruned to its partition; a day listed by a room not yet swept is not dropped.
     */
    earlierExpiries: timestamps('earlier_expiries').array().notNull().default(sql`'{}'`),
  },
  (table) => [
    // Room listing (active rooms, newest first) is a keyset read on this index, which leaves
    // out the swept rooms (tombstones) a listing would otherwise walk past (migration 0009).
    index('rooms_live_created_at_id_idx').on(table.createdAt.desc(), table.id.desc()).where(sql`${table.expiredAt} is null`),
    // The expiry sweep reads only rooms not yet purged.
    index('rooms_unexpired_expires_at_idx').on(table.expiresAt).where(sql`${table.expiredAt} is null`),
    index('rooms_expired_at_idx').on(table.expiredAt).where(sql`${table.expiredAt} is not null`),
    // A room's expiry by its id, read by every history page and feed read (to prune messages to
    // the room's day) without visiting the row. Once also the target of messages' foreign key.
    uniqueIndex('rooms_id_expires_at_key').on(table.id, table.expiresAt),
    // Rooms whose messages still sit under an earlier expiry: the partition job's worklist and
    // its check before dropping a day, read without visiting every room (migration 0013).
    index('rooms_earlier_expiries_idx').on(table.id).where(sql`${table.earlierExpiries} <> '{}'`),
    index('rooms_webhook_pending_idx').on(table.id).where(sql`${table.webhookPending}`),
    // A webhook delivery lane's pending rooms (migration 0006; the 16 lanes of webhook-cursors.repository.ts).
    index('rooms_webhook_lane_idx').using('btree', sql`(get_byte(uuid_send(${table.id}), 15) % 16)`, table.id).where(sql`${table.webhookPending}`),
    check('rooms_member_count_non_negative', sql`${table.memberCount} >= 0`),
  ],
);

export const roomMembers = pgTable(
  'room_members',
  {
    roomId: uuid('room_id')
      .notNull()
      .references(() => rooms.id, { onDelete: 'cascade' }),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    joinedAt: timestamps('joined_at').notNull().defaultNow(),
  },
  (table) => [
    primaryKey({ columns: [table.roomId, table.userId] }),
    // A connecting socket is put into every room of its user: a range read on this index.
    index('room_members_user_id_idx').on(table.userId),
    // A room's member list in joining order, a page at a time (migration 0009).
    index('room_members_room_joined_at_user_idx').on(table.roomId, table.joinedAt, table.userId),
  ],
);

/**
 * Partitioned by RANGE (expires_at), one partition per UTC day (migration 0002, hand-written:
 * drizzle has no partitioning). A room's messages all carry the room's `expires_at`, which never
 * changes, so they share one partition; the worker creates partitions ahead and drops a day
 * once every room in it expired (docs/partitions.md). Postgres wants the partition key in every
 * unique index, hence `expires_at` in the primary key and the two unique indexes below.
 */
export const messages = pgTable(
  'messages',
  {
    /** UUIDv7, generated by the gateway. */
    id: uuid('id').notNull(),
    roomId: uuid('room_id').notNull(),
    /**
     * No foreign key to users (migration 0005): its check ran once per inserted message, and a
     * sender's row is written before its first send (the socket handshake's or the server API's
     * upsert) and never deleted, so the check could not fail.
     */
    userId: uuid('user_id').notNull(),
    type: text('type', { enum: MESSAGE_TYPES }).notNull(),
    content: text('content'),
    imageUrl: text('image_url'),
    clientMessageId: text('client_message_id'),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    /**
     * The change feed's number of the message's `new-message` change (PROTOCOL §16), set by the
     * group commit for every message it stores. Nullable only so that rows seeded straight
     * into the table (tests, benchmarks) need not invent one; the feed skips such rows.
     */
    changeSeq: bigint('change_seq', { mode: 'number' }),
    /** The change feed's number of the `message-deleted` change; null while not deleted. */
    deletedChangeSeq: bigint('deleted_change_seq', { mode: 'number' }),
    createdAt: timestamps('created_at').notNull(),
    expiresAt: timestamps('expires_at').notNull(),
    isDeleted: boolean('is_deleted').notNull().default(false),
  },
  (table) => [
    primaryKey({ name: 'messages_pkey', columns: [table.id, table.expiresAt] }),
    // A message's expires_at IS its room's: what puts a room in one partition, and what the
    // unique keys below rely on. No foreign key holds it (migration 0005 dropped the one to
    // rooms (id, expires_at): its check ran once per inserted message); the code that writes
    // the two does: the batch insert copies expires_at from the room row it holds locked, a
    // change of a room's expiry moves its messages in the same transaction, under the same
    // lock (room-lifetime.repository.ts), and deleting a room's tombstone deletes its messages
    // (room-expiry.repository.ts), which the foreign key's cascades did before.
    // Gap-free per-room numbering, the keyset for `after` catch-up over every message, and the
    // history pages' range scan (deleted rows, rare, are filtered on the heap row the page
    // reads anyway; a partial index of live rows only cost a fourth index write per message).
    // Unique on (room_id, seq) too: a room's rows all share one expires_at.
    uniqueIndex('messages_room_seq_key').on(table.roomId, table.seq, table.expiresAt),
    // The change feed reads a room's messages by change number (stored, then deleted).
    index('messages_room_change_seq_idx').on(table.roomId, table.changeSeq),
    index('messages_room_deleted_change_seq_idx')
      .on(table.roomId, table.deletedChangeSeq)
      .where(sql`${table.deletedChangeSeq} is not null`),
    // Idempotent sends: one message per (user, clientMessageId) — enforced per expires_at
    // value, which covers every retry (same room); the dedupe read spans all partitions.
    uniqueIndex('messages_user_client_message_id_key')
      .on(table.userId, table.clientMessageId, table.expiresAt)
      .where(sql`${table.clientMessageId} is not null`),
    // The same list as the protocol's; changing it needs a migration (`pnpm db:generate`).
    check('messages_type_valid', sql`${table.type} in (${sql.raw(MESSAGE_TYPES.map((type) => `'${type}'`).join(', '))})`),
  ],
);

/**
 * The kinds of `room_events` rows: the protocol's list (changing it needs a migration that
 * replaces the CHECK below: 0007 added `room-lifetime-changed`).
 */
export type RoomEventKind = (typeof ROOM_EVENT_KINDS)[number];

/**
 * The change feed's rows other than messages (PROTOCOL §16). A message's own row carries its
 * `change_seq` (and `deleted_change_seq`), so a send writes no second row; everything else that
 * changes a room writes one row here with the room's next number, in the same statement.
 * Removed with the room's tombstone (ON DELETE CASCADE).
 */
export const roomEvents = pgTable(
  'room_events',
  {
    roomId: uuid('room_id')
      .notNull()
      .references(() => rooms.id, { onDelete: 'cascade' }),
    changeSeq: bigint('change_seq', { mode: 'number' }).notNull(),
    kind: text('kind', { enum: ROOM_EVENT_KINDS }).notNull(),
    /** user-joined / user-left: who. */
    userId: uuid('user_id'),
    /** user-joined / user-left: the room's member count after the change. */
    memberCount: integer('member_count'),
    /** room-expiring / room-lifetime-changed: when the room expires (as of that change). */
    expiresAt: timestamps('expires_at'),
    createdAt: timestamps('created_at').notNull().defaultNow(),
  },
  (table) => [
    primaryKey({ name: 'room_events_pkey', columns: [table.roomId, table.changeSeq] }),
    check('room_events_kind_valid', sql`${table.kind} in (${sql.raw(ROOM_EVENT_KINDS.map((kind) => `'${kind}'`).join(', '))})`),
  ],
);

/**
 * Webhook delivery (docs/webhooks.md): per endpoint and room, the last `changeSeq` the
 * endpoint acknowledged. The worker delivers the feed after it, in order.
 */
export const webhookCursors = pgTable(
  'webhook_cursors',
  {
    endpointId: text('endpoint_id').notNull(),
    roomId: uuid('room_id')
      .notNull()
      .references(() => rooms.id, { onDelete: 'cascade' }),
    deliveredChangeSeq: bigint('delivered_change_seq', { mode: 'number' }).notNull().default(0),
    updatedAt: timestamps('updated_at').notNull().defaultNow(),
  },
  (table) => [primaryKey({ name: 'webhook_cursors_pkey', columns: [table.endpointId, table.roomId] })],
);

/**
 * The endpoints some worker process is configured with: a new one raises every room's
 * `webhook_pending`, a batch of rooms at a time (migration 0008); one no process has named for
 * the grace (`seen_at`, migration 0011) is deleted. The settle pass waits for every endpoint here.
 */
export const webhookEndpoints = pgTable('webhook_endpoints', {
  id: text('id').primaryKey(),
  createdAt: timestamps('created_at').notNull().defaultNow(),
  /** The rooms from this id on (in id order) are still to be flagged for the endpoint; null: all of them. */
  flagFrom: uuid('flag_from'),
  /** When every room with changes had been flagged for it; null while that goes on. */
  syncedAt: timestamps('synced_at'),
  /** When a worker process configured with it last said so (a heartbeat, refreshed by its dispatch runs). */
  seenAt: timestamps('seen_at').notNull().defaultNow(),
});

/**
 * What each server API Idempotency-Key was first used for, per API key (PROTOCOL §17): the
 * SHA-256 of the request, so a reuse for a different request is refused. The message itself is
 * deduplicated by `messages`' (user_id, client_message_id) index. Goes with the room's tombstone.
 */
export const serverIdempotencyKeys = pgTable(
  'server_idempotency_keys',
  {
    apiKeyId: text('api_key_id').notNull(),
    idempotencyKey: text('idempotency_key').notNull(),
    roomId: uuid('room_id')
      .notNull()
      .references(() => rooms.id, { onDelete: 'cascade' }),
    /** Hex. */
    requestSha256: text('request_sha256').notNull(),
    createdAt: timestamps('created_at').notNull().defaultNow(),
  },
  (table) => [
    primaryKey({ name: 'server_idempotency_keys_pkey', columns: [table.apiKeyId, table.idempotencyKey] }),
    index('server_idempotency_keys_room_id_idx').on(table.roomId),
  ],
);

export type UserRow = typeof users.$inferSelect;
export type RoomRow = typeof rooms.$inferSelect;
export type MessageRow = typeof messages.$inferSelect;
