DROP INDEX "rooms_expires_at_idx";--> statement-breakpoint
ALTER TABLE "rooms" ADD COLUMN "expired_at" timestamp (3) with time zone;--> statement-breakpoint
ALTER TABLE "rooms" ADD COLUMN "expiring_notified_at" timestamp (3) with time zone;--> statement-breakpoint
ALTER TABLE "rooms" ADD COLUMN "last_message_at" timestamp (3) with time zone;--> statement-breakpoint
CREATE INDEX "rooms_unexpired_expires_at_idx" ON "rooms" USING btree ("expires_at") WHERE "rooms"."expired_at" is null;--> statement-breakpoint
CREATE INDEX "rooms_expired_at_idx" ON "rooms" USING btree ("expired_at") WHERE "rooms"."expired_at" is not null;