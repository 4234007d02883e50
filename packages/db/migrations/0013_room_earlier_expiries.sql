-- Hand-written, as 0012. Extending or closing a room (server API, room-lifetime.repository.ts)
-- rewrote every one of its messages' expires_at (their partition key) in one statement under the
-- room's row lock: 200,000 messages took 1.4 s with the room's sends held, and at 1,000,000 it
-- ran past the 5 s statement timeout every time (docs/partitions.md). Now the change only appends
-- the room's old expiry to `earlier_expiries`; reads look in the room's expiry and every earlier
-- one (each pruned to its partition), and the worker's partition job moves those messages to the
-- room's expiry (or deletes them once the room is expired) in short batches, removing an expiry
-- once it holds none. No day listed by a room not yet swept is dropped.
--
-- Backfill: none is needed. Until this migration every message carried its room's expiry (the
-- batch insert copies it, and a change of expiry moved them in the same transaction), so every
-- room starts with nothing earlier: `'{}'`, a constant default, which Postgres stores in the
-- catalog without rewriting `rooms`. The partial index holds no row at first.
ALTER TABLE "rooms" ADD COLUMN "earlier_expiries" timestamp (3) with time zone[] DEFAULT '{}' NOT NULL;--> statement-breakpoint
CREATE INDEX "rooms_earlier_expiries_idx" ON "rooms" USING btree ("id") WHERE "rooms"."earlier_expiries" <> '{}';
