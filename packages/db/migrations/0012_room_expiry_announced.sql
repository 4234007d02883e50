-- Hand-written, as 0008. The expiry sweep records `room-expired` in the room's change feed and
-- then publishes it on the bus. A publish that failed (the bus away for a moment) left the room
-- to the next sweep, which took the record for "announced by the sweep that wrote it" and purged
-- and marked the room: its members were never told. Now the sweep sets `expiry_announced_at`
-- once the bus has taken the announcement, and a room is marked expired only after that; an
-- unannounced record is announced again once it is old enough that its recorder is gone.
-- Rooms mid-sweep at this migration were announced by the sweep that recorded them.
ALTER TABLE "rooms" ADD COLUMN "expiry_announced_at" timestamp (3) with time zone;--> statement-breakpoint
UPDATE "rooms" SET "expiry_announced_at" = e."created_at"
  FROM "room_events" e
  WHERE e."room_id" = "rooms"."id" AND e."kind" = 'room-expired' AND "rooms"."expired_at" IS NULL;
