-- Hand-written (drizzle-kit writes no triggers); schema.ts mirrors the tables and columns.
-- Works on a database that already has rooms and messages; touches neither messages nor its
-- indexes.
--
-- 1. The server API's Idempotency-Key is scoped to the API key that sent it (PROTOCOL §17).
-- A message's dedupe stays one probe of messages' (user_id, client_message_id) index: the
-- gateway stores a server API message's client_message_id derived from (API key id, key), so two
-- backends using the same key value never meet there. This table remembers what each (API key,
-- key) was first used for (a SHA-256 of the request), so a reuse for a different request —
-- another sender, room or body — is refused (IDEMPOTENCY_KEY_REUSED) instead of storing a
-- second message. It goes with the room's tombstone, as the room's messages do.
CREATE TABLE "server_idempotency_keys" (
	"api_key_id" text NOT NULL,
	"idempotency_key" text NOT NULL,
	"room_id" uuid NOT NULL,
	"request_sha256" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "server_idempotency_keys_pkey" PRIMARY KEY("api_key_id","idempotency_key")
);
--> statement-breakpoint
ALTER TABLE "server_idempotency_keys" ADD CONSTRAINT "server_idempotency_keys_room_id_rooms_id_fk" FOREIGN KEY ("room_id") REFERENCES "public"."rooms"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
-- The cascade from a tombstone's delete finds its rows by this index, not a scan.
CREATE INDEX "server_idempotency_keys_room_id_idx" ON "server_idempotency_keys" USING btree ("room_id");--> statement-breakpoint
--
-- 2. The webhook dispatch reads rooms with undelivered changes through an index instead of a
-- scan of every room (tombstones included) per endpoint and poll. rooms.webhook_pending is set
-- by a trigger when a room's change counter moves while the flag is down, so none of the
-- statements that change a room has to know; the dispatch lowers it once every configured
-- endpoint's cursor has reached the room's last change. Costs: the trigger's WHEN is evaluated
-- per room update without calling the function; the function runs, and the update is not HOT
-- (the flag is in the partial index's predicate), only when the flag goes up — once per room
-- per delivery, not per message. While the flag is up, a room's updates stay HOT as before.
ALTER TABLE "rooms" ADD COLUMN "webhook_pending" boolean DEFAULT false NOT NULL;--> statement-breakpoint
-- Rooms with changes are pending until the dispatch sees every endpoint caught up with them.
UPDATE "rooms" SET "webhook_pending" = true WHERE "last_change_seq" > 0;--> statement-breakpoint
CREATE INDEX "rooms_webhook_pending_idx" ON "rooms" USING btree ("id") WHERE "rooms"."webhook_pending";--> statement-breakpoint
CREATE FUNCTION rooms_raise_webhook_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.webhook_pending := true;
  RETURN NEW;
END
$$;--> statement-breakpoint
CREATE TRIGGER "rooms_webhook_pending" BEFORE UPDATE OF "last_change_seq" ON "rooms"
FOR EACH ROW WHEN (NEW.last_change_seq > OLD.last_change_seq AND NOT OLD.webhook_pending)
EXECUTE FUNCTION rooms_raise_webhook_pending();--> statement-breakpoint
-- The endpoints the dispatch last saw configured: one that appears (new, or renamed) starts
-- from the beginning of every room (docs/webhooks.md), so its arrival raises every room's flag.
CREATE TABLE "webhook_endpoints" (
	"id" text PRIMARY KEY NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
