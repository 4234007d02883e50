-- Hand-written (drizzle-kit has no partitioning); meta/0002_snapshot.json matches schema.ts.
--
-- `messages` becomes a table partitioned by RANGE (expires_at), one partition per UTC day
-- (messages_pYYYYMMDD), plus messages_default as a safety net. At 10,000 messages a second a day
-- is 864M rows: a purge by DELETE cannot keep up and bloats the table; dropping the day's
-- partition once every room in it expired costs a catalog change. See docs/partitions.md.
--
-- Uniqueness across partitions. Postgres requires the partition key in every unique index, so:
--   * primary key (id, expires_at). Ids are UUIDv7 made by the gateway, unique on their own.
--   * unique (room_id, seq, expires_at). Every message carries its room's expires_at: the batch
--     insert copies it from the locked room row, and the foreign key (room_id, expires_at) ->
--     rooms (id, expires_at) makes Postgres hold it (ON UPDATE CASCADE would move the rows if a
--     room's expiry ever changed; it does not). So a room's messages all have one expires_at and
--     live in one partition: (room_id, seq, expires_at) unique => (room_id, seq) unique.
--   * unique (user_id, client_message_id, expires_at). A retry is a resend to the same room, so
--     it has the same expires_at and the index stops a concurrent duplicate (23505) exactly as
--     before. The dedupe read in the batch statement looks (user_id, client_message_id) up in
--     every partition, so a retry finds its original whatever the room, as long as the
--     original's day is not dropped. What the index no longer stops is the same user sending
--     the same clientMessageId to two rooms with different expiry at the same instant from two
--     pods (both committed before either sees the other): not a retry.
--
-- Works on a database that already has messages, in the migrator's one transaction: the old
-- table is renamed aside, the partitioned table created, a partition made for every expiry day
-- present and for today .. today + 2, the rows copied (routed to their day; each takes its
-- room's expires_at, which the batch insert always wrote anyway), the indexes and foreign keys
-- created once the rows are in (one build per partition instead of per row), and the old table
-- dropped. It holds an ACCESS EXCLUSIVE lock on messages throughout.

-- Creates the partition of `day` (UTC) unless it exists, moving in any rows of that day that
-- landed in messages_default meanwhile. Built standalone and then attached: ATTACH takes a
-- SHARE UPDATE EXCLUSIVE lock on messages where CREATE TABLE … PARTITION OF takes an ACCESS
-- EXCLUSIVE one (it still takes ACCESS EXCLUSIVE on messages_default, to check it holds no row
-- of the day, until commit). Serialised on an advisory lock, so two workers (or a worker and
-- this migration) never race on one name. Returns true when it created the partition. Used by
-- this migration and by the worker's partition job.
--
-- Lock order. ATTACH clones the foreign keys, which takes SHARE ROW EXCLUSIVE on rooms and
-- users. Taken there, after messages_default, it deadlocked with the gateway's batch statement,
-- which locks rooms first (FOR UPDATE, then UPDATE: ROW SHARE, then ROW EXCLUSIVE) and its
-- partitions after. So rooms and users are locked here first, before any lock on messages, and
-- the DDL waits (bounded by the caller's lock_timeout) until sends in flight commit; new sends
-- queue behind it for the few milliseconds of the DDL. rooms takes EXCLUSIVE, not just the SHARE
-- ROW EXCLUSIVE the foreign key needs: that one is granted next to a transaction that holds a
-- room row (ROW SHARE) and has read messages, which would then wait here for its UPDATE of the
-- room while this waits for messages_default behind its read. EXCLUSIVE still lets plain reads
-- of rooms through. users is only referenced by the foreign key (RI checks take ROW SHARE,
-- which SHARE ROW EXCLUSIVE lets through).
CREATE FUNCTION messages_ensure_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  part text := 'messages_p' || to_char(day, 'YYYYMMDD');
  lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
  hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
  PERFORM pg_advisory_xact_lock(727275);
  IF to_regclass(format('public.%I', part)) IS NOT NULL THEN
    RETURN false;
  END IF;
  -- Before any lock on messages: see "Lock order" above.
  LOCK TABLE public.rooms IN EXCLUSIVE MODE;
  LOCK TABLE public.users IN SHARE ROW EXCLUSIVE MODE;
  EXECUTE format('CREATE TABLE public.%I (LIKE public.messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
  -- No row of the day may reach messages_default between the move and the attach (which would
  -- then fail its check of the default partition); reads go on.
  LOCK TABLE public.messages_default IN EXCLUSIVE MODE;
  EXECUTE format(
    'WITH moved AS (DELETE FROM public.messages_default WHERE expires_at >= %L AND expires_at < %L RETURNING *)
     INSERT INTO public.%I SELECT * FROM moved', lo, hi, part);
  EXECUTE format('ALTER TABLE public.messages ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
  RETURN true;
END
$$;
--> statement-breakpoint
ALTER TABLE "messages" RENAME TO "messages_unpartitioned";--> statement-breakpoint
ALTER INDEX "messages_pkey" RENAME TO "messages_unpartitioned_pkey";--> statement-breakpoint
ALTER INDEX "messages_room_seq_key" RENAME TO "messages_unpartitioned_room_seq_key";--> statement-breakpoint
ALTER INDEX "messages_room_live_seq_idx" RENAME TO "messages_unpartitioned_room_live_seq_idx";--> statement-breakpoint
ALTER INDEX "messages_user_client_message_id_key" RENAME TO "messages_unpartitioned_user_client_message_id_key";--> statement-breakpoint
CREATE TABLE "messages" (
	"id" uuid NOT NULL,
	"room_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"type" text NOT NULL,
	"content" text,
	"image_url" text,
	"client_message_id" text,
	"seq" bigint NOT NULL,
	"created_at" timestamp (3) with time zone NOT NULL,
	"expires_at" timestamp (3) with time zone NOT NULL,
	"is_deleted" boolean DEFAULT false NOT NULL,
	CONSTRAINT "messages_type_valid" CHECK ("messages"."type" in ('text', 'image', 'emoji'))
) PARTITION BY RANGE ("expires_at");--> statement-breakpoint
-- Rows whose day has no partition yet land here instead of failing the gateway's insert (the
-- worker was down longer than its look-ahead, or a room outlives it). They stay readable; the
-- worker's next run moves them into their day's partition when it creates it.
CREATE TABLE "messages_default" PARTITION OF "messages" DEFAULT;--> statement-breakpoint
DO $$
DECLARE
  d date;
BEGIN
  FOR d IN
    SELECT DISTINCT (r.expires_at AT TIME ZONE 'UTC')::date
    FROM rooms r WHERE EXISTS (SELECT 1 FROM messages_unpartitioned m WHERE m.room_id = r.id)
    UNION
    SELECT g::date FROM generate_series((now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date + 2, interval '1 day') g
  LOOP
    PERFORM messages_ensure_partition(d);
  END LOOP;
END
$$;--> statement-breakpoint
INSERT INTO "messages" ("id", "room_id", "user_id", "type", "content", "image_url", "client_message_id", "seq", "created_at", "expires_at", "is_deleted")
SELECT m."id", m."room_id", m."user_id", m."type", m."content", m."image_url", m."client_message_id", m."seq", m."created_at", r."expires_at", m."is_deleted"
FROM "messages_unpartitioned" m JOIN "rooms" r ON r."id" = m."room_id";--> statement-breakpoint
DROP TABLE "messages_unpartitioned";--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_pkey" PRIMARY KEY ("id", "expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "messages_room_seq_key" ON "messages" USING btree ("room_id", "seq", "expires_at");--> statement-breakpoint
CREATE INDEX "messages_room_live_seq_idx" ON "messages" USING btree ("room_id", "seq") WHERE "messages"."is_deleted" = false;--> statement-breakpoint
CREATE UNIQUE INDEX "messages_user_client_message_id_key" ON "messages" USING btree ("user_id", "client_message_id", "expires_at") WHERE "messages"."client_message_id" is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "rooms_id_expires_at_key" ON "rooms" USING btree ("id", "expires_at");--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_room_id_expires_at_rooms_fk" FOREIGN KEY ("room_id", "expires_at") REFERENCES "public"."rooms"("id", "expires_at") ON DELETE cascade ON UPDATE cascade;--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;
