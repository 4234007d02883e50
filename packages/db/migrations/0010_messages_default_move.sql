-- Hand-written (as 0006, 0007; drizzle has no partitioning or triggers). Emptying
-- messages_default without stopping sends (docs/partitions.md, "Rows in messages_default").
--
-- Until now messages_ensure_partition moved a day's rows out of messages_default with one
-- DELETE … INSERT and an ATTACH that scanned messages_default, all under rooms' EXCLUSIVE lock.
-- A day that piled up there (the worker down longer than its look-ahead: at 10,000 messages a
-- second an hour is 36M rows) could not be moved within the worker's 5 s statement_timeout:
-- cancelled, nothing moved, and every send stalled behind the rooms lock for those 5 s, on every
-- run. Now the rows are copied out in bounded batches, each its own short transaction that takes
-- no lock a send waits for, and only the last step locks:
--
--   1. messages_default_move_begin(): turns on a row trigger of messages_default that logs the id
--      of every row inserted, updated or deleted there from then on, and notes the last key
--      (id, expires_at) present. ALTER TABLE … ENABLE TRIGGER takes SHARE ROW EXCLUSIVE on
--      messages_default: it waits for the writers in flight to commit, and every writer after it
--      sees the trigger (the relcache is reread when a writer locks the table), so each change is
--      either visible to the copy below or in the log.
--   2. messages_default_move_copy(n): copies the next n rows, in key order up to that last key,
--      into standalone tables named as their days' partitions (messages_pYYYYMMDD, created here,
--      with the partitioned indexes and a CHECK constraint of the day's bound), not attached. The
--      rows STAY in messages_default, so every read, every send's dedupe read, the unique keys and
--      the change feed keep seeing the whole day where it was: nothing is half-moved, ever.
--   3. messages_default_move_replay(n): takes the next n ids off the log and copies those rows
--      again (deleted from the staged tables, copied as they are now, or not at all when gone).
--   4. messages_default_move_finish(): LOCK rooms EXCLUSIVE (the order of docs/partitions.md,
--      "Locks"), ACCESS EXCLUSIVE on messages_default, replays what is left of the log (sends
--      are held, so it is what arrived since the last replay), then TRUNCATE messages_default —
--      every row of it is in a staged table — and ATTACH each staged table: its CHECK constraint
--      proves the bound, so ATTACH does not scan it, and the empty messages_default costs nothing
--      to check. A catalog change and a few small copies under the lock, whatever the rows.
--
-- Every step is one statement (a transaction of its own), serialised with the creation and drop
-- of days on the advisory lock 727275, and resumable: the state is in messages_default_move (the
-- copy's cursor), messages_default_move_days (the staged tables) and messages_default_changes
-- (the log). A worker killed between two steps leaves the staged rows unattached and the log
-- running; the next run goes on from the cursor. Copies are idempotent (ON CONFLICT DO NOTHING
-- in the bulk copy, delete-then-copy by id in the replay), so nothing is counted twice.
--
-- Idempotent on a database that has any of it already (IF NOT EXISTS, OR REPLACE, the trigger
-- created only when missing, so a move under way keeps its trigger on).
CREATE TABLE IF NOT EXISTS "messages_default_move" (
	-- One row while a move is under way.
	"singleton" boolean PRIMARY KEY DEFAULT true CHECK ("singleton"),
	-- The last key of messages_default when the move began (null: it was empty); the bulk copy
	-- stops there, every row written after begin is in the log.
	"copy_until_id" uuid,
	"copy_until_expires_at" timestamp (3) with time zone,
	-- The bulk copy's cursor: the last key copied (null: none yet).
	"copied_through_id" uuid,
	"copied_through_expires_at" timestamp (3) with time zone,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL
);--> statement-breakpoint
-- The staged tables: messages_pYYYYMMDD of each day, created by the move, not attached yet.
CREATE TABLE IF NOT EXISTS "messages_default_move_days" ("day" date PRIMARY KEY);--> statement-breakpoint
-- Ids of the rows of messages_default changed while a move is under way, in the order logged.
CREATE TABLE IF NOT EXISTS "messages_default_changes" (
	"seq" bigserial PRIMARY KEY,
	"id" uuid NOT NULL
);--> statement-breakpoint
CREATE OR REPLACE FUNCTION messages_default_log_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- A row that changes partition (a room's expiry moved) is a DELETE here and an INSERT there:
  -- both ends are logged when either is messages_default.
  IF TG_OP = 'DELETE' THEN
    INSERT INTO public.messages_default_changes (id) VALUES (OLD.id);
  ELSIF TG_OP = 'INSERT' THEN
    INSERT INTO public.messages_default_changes (id) VALUES (NEW.id);
  ELSE
    INSERT INTO public.messages_default_changes (id) VALUES (OLD.id);
    IF NEW.id IS DISTINCT FROM OLD.id THEN
      INSERT INTO public.messages_default_changes (id) VALUES (NEW.id);
    END IF;
  END IF;
  RETURN NULL;
END
$$;--> statement-breakpoint
-- Created disabled: it costs a send nothing until a move turns it on.
DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_trigger
    WHERE tgrelid = 'public.messages_default'::regclass AND tgname = 'messages_default_log_change'
  ) THEN
    CREATE TRIGGER messages_default_log_change AFTER INSERT OR UPDATE OR DELETE ON public.messages_default
      FOR EACH ROW EXECUTE FUNCTION messages_default_log_change();
    ALTER TABLE public.messages_default DISABLE TRIGGER messages_default_log_change;
  END IF;
END
$$;--> statement-breakpoint
-- The staged table of `day` (created when missing), by name. A table of that name that the move
-- did not create (a partition, or anything else) is an error: its rows cannot be moved.
CREATE OR REPLACE FUNCTION messages_default_move_stage(day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  part text := 'messages_p' || to_char(day, 'YYYYMMDD');
  lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
  hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
  IF EXISTS (SELECT 1 FROM public.messages_default_move_days d WHERE d.day = messages_default_move_stage.day) THEN
    RETURN part;
  END IF;
  IF to_regclass(format('public.%I', part)) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'duplicate_table',
      MESSAGE = format('%s exists and was not made by the move out of messages_default: the rows of %s stay there', part, day);
  END IF;
  -- INCLUDING INDEXES: ATTACH adopts them instead of building them under its lock. The CHECK
  -- constraint is the partition's bound, valid from the start (the table is empty): ATTACH
  -- skips its scan; it is dropped once attached.
  EXECUTE format(
    'CREATE TABLE public.%I (LIKE public.messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES,
       CONSTRAINT %I CHECK (expires_at >= %L::timestamptz AND expires_at < %L::timestamptz))',
    part, part || '_bound', lo, hi);
  INSERT INTO public.messages_default_move_days (day) VALUES (messages_default_move_stage.day);
  RETURN part;
END
$$;--> statement-breakpoint
-- Copies `batch` (rows of messages_default) into their days' staged tables. `skip_present`: a row
-- whose key is staged already is left as it is (the bulk copy: the replay staged it, as current
-- as the log says); otherwise a conflict is an error (the replay deletes its ids first).
CREATE OR REPLACE FUNCTION messages_default_move_put(batch public.messages_default[], skip_present boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  d date;
  part text;
BEGIN
  FOR d IN SELECT DISTINCT (b.expires_at AT TIME ZONE 'UTC')::date FROM unnest(batch) b LOOP
    part := public.messages_default_move_stage(d);
    EXECUTE format(
      'INSERT INTO public.%I SELECT * FROM unnest($1) b WHERE b.expires_at >= $2 AND b.expires_at < $3 %s',
      part, CASE WHEN skip_present THEN 'ON CONFLICT DO NOTHING' ELSE '' END)
      USING batch, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC';
  END LOOP;
END
$$;--> statement-breakpoint
-- Stages the rows with these ids again, as messages_default holds them now.
CREATE OR REPLACE FUNCTION messages_default_move_refresh(ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  d date;
  batch public.messages_default[];
BEGIN
  FOR d IN SELECT day FROM public.messages_default_move_days LOOP
    EXECUTE format('DELETE FROM public.%I WHERE id = ANY($1)', 'messages_p' || to_char(d, 'YYYYMMDD')) USING ids;
  END LOOP;
  SELECT array_agg(m) INTO batch FROM public.messages_default m WHERE m.id = ANY(ids);
  IF batch IS NOT NULL THEN
    PERFORM public.messages_default_move_put(batch, false);
  END IF;
END
$$;--> statement-breakpoint
-- Drops the staged tables and the state of a move (never an attached partition).
CREATE OR REPLACE FUNCTION messages_default_move_reset() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  d date;
  part text;
BEGIN
  FOR d IN SELECT day FROM public.messages_default_move_days LOOP
    part := 'messages_p' || to_char(d, 'YYYYMMDD');
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass(format('public.%I', part)) AND NOT relispartition) THEN
      EXECUTE format('DROP TABLE public.%I', part);
    END IF;
  END LOOP;
  DELETE FROM public.messages_default_move_days;
  DELETE FROM public.messages_default_move;
  DELETE FROM public.messages_default_changes;
END
$$;--> statement-breakpoint
-- Starts a move (or finds one under way): true when there is one, false when messages_default is
-- empty and none is.
CREATE OR REPLACE FUNCTION messages_default_move_begin() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  logging boolean;
BEGIN
  PERFORM pg_advisory_xact_lock(727275);
  SELECT tgenabled <> 'D' INTO logging FROM pg_trigger
  WHERE tgrelid = 'public.messages_default'::regclass AND tgname = 'messages_default_log_change';
  IF EXISTS (SELECT 1 FROM public.messages_default_move) AND logging THEN
    RETURN true;
  END IF;
  -- No move, or one whose log was turned off behind its back (its copies may have missed
  -- changes): start from nothing.
  PERFORM public.messages_default_move_reset();
  IF NOT EXISTS (SELECT 1 FROM public.messages_default) THEN
    IF logging THEN
      ALTER TABLE public.messages_default DISABLE TRIGGER messages_default_log_change;
    END IF;
    RETURN false;
  END IF;
  -- Waits for the writers of messages_default in flight; every later one logs its changes.
  ALTER TABLE public.messages_default ENABLE TRIGGER messages_default_log_change;
  DELETE FROM public.messages_default_changes;
  INSERT INTO public.messages_default_move (copy_until_id, copy_until_expires_at)
  SELECT id, expires_at FROM public.messages_default ORDER BY id DESC, expires_at DESC LIMIT 1;
  RETURN true;
END
$$;--> statement-breakpoint
-- The bulk copy's next `batch_rows` rows; returns how many it read (0: the copy is done, or no
-- move is under way).
CREATE OR REPLACE FUNCTION messages_default_move_copy(batch_rows int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  st public.messages_default_move;
  batch public.messages_default[];
  tail public.messages_default;
BEGIN
  PERFORM pg_advisory_xact_lock(727275);
  SELECT * INTO st FROM public.messages_default_move;
  -- No move (another worker's run finished it meanwhile): nothing to copy.
  IF NOT FOUND OR st.copy_until_id IS NULL THEN
    RETURN 0;
  END IF;
  SELECT array_agg(s.m ORDER BY (s.m).id, (s.m).expires_at) INTO batch FROM (
    SELECT m FROM public.messages_default m
    WHERE (m.id, m.expires_at) > (coalesce(st.copied_through_id, '00000000-0000-0000-0000-000000000000'::uuid),
                                  coalesce(st.copied_through_expires_at, '-infinity'::timestamptz))
      AND (m.id, m.expires_at) <= (st.copy_until_id, st.copy_until_expires_at)
    ORDER BY m.id, m.expires_at
    LIMIT batch_rows
  ) s;
  IF batch IS NULL THEN
    UPDATE public.messages_default_move SET copied_through_id = copy_until_id, copied_through_expires_at = copy_until_expires_at;
    RETURN 0;
  END IF;
  PERFORM public.messages_default_move_put(batch, true);
  tail := batch[array_upper(batch, 1)];
  UPDATE public.messages_default_move SET copied_through_id = tail.id, copied_through_expires_at = tail.expires_at;
  RETURN array_length(batch, 1);
END
$$;--> statement-breakpoint
-- Replays the next `batch_rows` ids of the log; returns how many entries it took (0: empty, or
-- no move is under way).
CREATE OR REPLACE FUNCTION messages_default_move_replay(batch_rows int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  taken int;
  ids uuid[];
BEGIN
  PERFORM pg_advisory_xact_lock(727275);
  IF NOT EXISTS (SELECT 1 FROM public.messages_default_move) THEN
    RETURN 0;
  END IF;
  -- Only committed entries are visible here: a change still in flight is replayed by a later call.
  WITH gone AS (
    DELETE FROM public.messages_default_changes
    WHERE seq IN (SELECT seq FROM public.messages_default_changes ORDER BY seq LIMIT batch_rows)
    RETURNING id
  )
  SELECT count(*), array_agg(DISTINCT id) INTO taken, ids FROM gone;
  IF taken > 0 THEN
    PERFORM public.messages_default_move_refresh(ids);
  END IF;
  RETURN taken;
END
$$;--> statement-breakpoint
-- Ends the move: under the locks, replays the rest of the log, empties messages_default and
-- attaches the staged days. Returns them (empty when no move was under way). `lock_wait_ms`
-- bounds each of its lock waits (null: the session's lock_timeout): sends queue behind the rooms
-- lock while it waits for the others, so a short wait that fails (55P03) and is tried again
-- holds them up less than one long one.
CREATE OR REPLACE FUNCTION messages_default_move_finish(lock_wait_ms int DEFAULT NULL) RETURNS date[]
LANGUAGE plpgsql AS $$
DECLARE
  st public.messages_default_move;
  ids uuid[];
  days date[];
  d date;
  part text;
  session_lock_timeout text := current_setting('lock_timeout');
BEGIN
  PERFORM pg_advisory_xact_lock(727275);
  SELECT * INTO st FROM public.messages_default_move;
  IF NOT FOUND THEN
    RETURN '{}';
  END IF;
  IF lock_wait_ms IS NOT NULL THEN
    PERFORM set_config('lock_timeout', lock_wait_ms || 'ms', true);
  END IF;
  -- rooms first, before any lock on messages (docs/partitions.md, "Locks"): every send holds
  -- rooms before it touches a partition, so none is in flight once this is granted.
  LOCK TABLE public.rooms IN EXCLUSIVE MODE;
  -- What ATTACH takes on the parent (sends go on: they hold ROW EXCLUSIVE and ACCESS SHARE).
  LOCK TABLE ONLY public.messages IN SHARE UPDATE EXCLUSIVE MODE;
  -- Readers of messages_default (history pages, lookups by id) finish first; none comes after.
  LOCK TABLE public.messages_default IN ACCESS EXCLUSIVE MODE;
  PERFORM set_config('lock_timeout', session_lock_timeout, true);
  IF st.copy_until_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM public.messages_default m
    WHERE (m.id, m.expires_at) > (coalesce(st.copied_through_id, '00000000-0000-0000-0000-000000000000'::uuid),
                                  coalesce(st.copied_through_expires_at, '-infinity'::timestamptz))
      AND (m.id, m.expires_at) <= (st.copy_until_id, st.copy_until_expires_at)
  ) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state', MESSAGE = 'the copy out of messages_default is not done';
  END IF;
  -- Nothing writes messages_default now: what the log holds is every change not staged yet.
  WITH gone AS (DELETE FROM public.messages_default_changes RETURNING id)
  SELECT array_agg(DISTINCT id) INTO ids FROM gone;
  IF ids IS NOT NULL THEN
    PERFORM public.messages_default_move_refresh(ids);
  END IF;
  -- Every row of messages_default is in a staged table, as it is now.
  TRUNCATE public.messages_default;
  ALTER TABLE public.messages_default DISABLE TRIGGER messages_default_log_change;
  SELECT coalesce(array_agg(day ORDER BY day), '{}') INTO days FROM public.messages_default_move_days;
  FOREACH d IN ARRAY days LOOP
    part := 'messages_p' || to_char(d, 'YYYYMMDD');
    EXECUTE format('ALTER TABLE public.messages ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
      part, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
    EXECUTE format('ALTER TABLE public.%I DROP CONSTRAINT %I', part, part || '_bound');
  END LOOP;
  DELETE FROM public.messages_default_move_days;
  DELETE FROM public.messages_default_move;
  RETURN days;
END
$$;--> statement-breakpoint
-- messages_ensure_partition (0005) for a day without rows waiting: refuses while a move out of
-- messages_default is under way (the move creates the days of its rows; creating another would
-- scan messages_default, however large, under the rooms lock), and a table of the partition's
-- name that is not one is an error instead of a partition that silently never exists.
CREATE OR REPLACE FUNCTION messages_ensure_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  part text := 'messages_p' || to_char(day, 'YYYYMMDD');
  lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
  hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
  PERFORM pg_advisory_xact_lock(727275);
  IF EXISTS (SELECT 1 FROM pg_inherits
             WHERE inhrelid = to_regclass(format('public.%I', part)) AND inhparent = 'public.messages'::regclass) THEN
    RETURN false;
  END IF;
  IF EXISTS (SELECT 1 FROM public.messages_default_move) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_in_use',
      MESSAGE = format('%s not created: messages_default is being moved into its days (messages_default_move)', part);
  END IF;
  IF to_regclass(format('public.%I', part)) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'duplicate_table', MESSAGE = format('%s exists and is not a partition of messages', part);
  END IF;
  -- Before any lock on messages: see docs/partitions.md, "Locks".
  LOCK TABLE public.rooms IN EXCLUSIVE MODE;
  EXECUTE format('CREATE TABLE public.%I (LIKE public.messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
  -- No row of the day may reach messages_default between the move and the attach (which would
  -- then fail its check of the default partition); reads go on. The job empties messages_default
  -- first (messages_default_move_*), so this moves at most the few rows sent since.
  LOCK TABLE public.messages_default IN EXCLUSIVE MODE;
  EXECUTE format(
    'WITH moved AS (DELETE FROM public.messages_default WHERE expires_at >= %L AND expires_at < %L RETURNING *)
     INSERT INTO public.%I SELECT * FROM moved', lo, hi, part);
  EXECUTE format('ALTER TABLE public.messages ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
  RETURN true;
END
$$;
