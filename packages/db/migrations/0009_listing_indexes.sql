-- Hand-written, as 0006. Two listings whose cost grew with what a user could pile up
-- (a resource review, 2026-12-07):
-- * The room listing (active rooms, newest first) read rooms_created_at_id_idx, which holds
--   tombstones too: one account creating rooms of one second's lifetime leaves ~100,000 a week,
--   all newer than the live rooms, and every first page walked past them (29 ms of database time
--   a page at 115,000 rooms). The listing reads only rooms not yet swept (expired_at is null),
--   and this index holds only those.
-- * A room's member list ordered by joining time sorted all of the room's members for every page
--   (39 ms of database CPU a page at 50,000 members): an index in that order.
CREATE INDEX IF NOT EXISTS "rooms_live_created_at_id_idx" ON "rooms" USING btree ("created_at" DESC NULLS LAST, "id" DESC NULLS LAST) WHERE "expired_at" IS NULL;--> statement-breakpoint
DROP INDEX IF EXISTS "rooms_created_at_id_idx";--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "room_members_room_joined_at_user_idx" ON "room_members" USING btree ("room_id", "joined_at", "user_id");
