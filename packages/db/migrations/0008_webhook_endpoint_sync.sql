-- Hand-written, as 0006. An endpoint that appears (new, or renamed) starts from the beginning of
-- every room (docs/webhooks.md), so every room with changes is flagged `webhook_pending` for it.
-- That was one UPDATE of every such room, in the transaction that recorded the endpoint: at
-- 300,000 rooms it outlasted the worker's 5 s statement_timeout on every attempt, so the endpoint
-- was never recorded, the dispatch failed on every poll for every endpoint, and each attempt held
-- the row locks of the rooms it had updated until it was cancelled. The rooms are now flagged a
-- batch at a time, in room id order, each batch its own short transaction
-- (webhook-cursors.repository.ts `flagRooms`), and these two columns are where the endpoint's
-- sync stands, so that it goes on after a failed batch or a worker restart:
--   flag_from: the rooms from this id on (in id order) are still to be flagged; null: all of them.
--   synced_at: when the last batch was done; null while the sync goes on.
ALTER TABLE "webhook_endpoints" ADD COLUMN "flag_from" uuid;--> statement-breakpoint
ALTER TABLE "webhook_endpoints" ADD COLUMN "synced_at" timestamp (3) with time zone;--> statement-breakpoint
-- An endpoint recorded before this migration had its rooms flagged in the statement that
-- recorded it: it is synced.
UPDATE "webhook_endpoints" SET "synced_at" = "created_at";
