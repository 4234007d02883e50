-- Hand-written (drizzle-kit writes no expression index on a function of a column); schema.ts
-- mirrors it. Webhook delivery lanes (docs/webhooks.md): a room's lane is the last byte of its
-- id modulo 16 (webhook-cursors.repository.ts spells the same expression; it must stay 16
-- while this index does), and each lane's delivery reads only its own pending rooms through this index,
-- not every pending room once per lane. Partial like rooms_webhook_pending_idx, on no column a
-- send changes (the id, and the flag that index already watches): a send's update of its room
-- stays as HOT as it was.
CREATE INDEX "rooms_webhook_lane_idx" ON "rooms" USING btree ((get_byte(uuid_send("id"), 15) % 16), "id") WHERE "rooms"."webhook_pending";
