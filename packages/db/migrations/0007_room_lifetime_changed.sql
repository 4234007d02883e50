-- Hand-written, as 0006. The change feed's new kind (PROTOCOL §16): `room-lifetime-changed`, the
-- server API's extend / close moving a room's expiry (room-lifetime.repository.ts). The CHECK is
-- replaced by a wider one under the same name. NOT VALID: every existing row passed the narrower
-- check this one contains, so validating would prove nothing, and it would scan the whole table
-- while this transaction holds room_events' ACCESS EXCLUSIVE lock (joins, leaves and the sweep's
-- notices wait for it); new rows are checked all the same.
ALTER TABLE "room_events" DROP CONSTRAINT "room_events_kind_valid";--> statement-breakpoint
ALTER TABLE "room_events" ADD CONSTRAINT "room_events_kind_valid" CHECK ("room_events"."kind" in ('user-joined', 'user-left', 'room-expiring', 'room-expired', 'room-occupied', 'room-vacated', 'room-lifetime-changed')) NOT VALID;
