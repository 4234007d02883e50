import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { MessagePartitionsRepository } from '@chat/db';
import type { WorkerMetrics } from '../metrics.ts';

export interface PartitionMaintenanceDeps {
  partitions: MessagePartitionsRepository;
  logger: Logger;
  /** Partitions exist for today .. today + this many days, whatever the rooms. */
  aheadDays?: number;
  /** Kept this long past the end of its day before a partition is dropped (0: at once). */
  graceMs?: number;
  /** Rows per batch (one short transaction each) when messages_default is emptied. */
  moveBatchRows?: number;
  /**
   * How long one run may spend emptying messages_default before it leaves the rest to the next
   * run (the move resumes where it stopped); the creations and drops come after it.
   */
  moveBudgetMs?: number;
  /** A pause after each batch of the move (tests: a move that lasts while they look at it). */
  moveBatchPauseMs?: number;
  /**
   * How long the move's locked end waits for each lock (rooms, then messages_default) before it
   * gives up and tries again: sends queue behind the rooms lock while it waits for readers of
   * messages_default to finish.
   */
  moveLockWaitMs?: number;
  /**
   * Rows per batch when a room's messages leave an earlier expiry (after an extend or close):
   * each batch holds the room's row lock, so the room's sends wait for one batch at most.
   */
  relocateBatchRows?: number;
  /** How long one run may spend on those batches before it leaves the rest to the next run. */
  relocateBudgetMs?: number;
  /**
   * Aborted when the worker is stopping: the move stops after its current batch, as when its
   * budget runs out (the next run goes on where it stands), and no further day is dropped.
   */
  stopping?: AbortSignal;
}

/** One step of a run that failed; the run went on with the others. */
export interface PartitionStepFailure {
  step: 'move-default' | 'wanted-days' | 'create' | 'relocate' | 'list' | 'drop';
  /** The day of a `create` or `drop`. */
  day?: string;
  error: unknown;
}

export interface PartitionMaintenanceResult {
  /** Days (YYYY-MM-DD) whose partition this run created (or attached, moved out of messages_default). */
  created: string[];
  /** Days whose partition this run dropped. */
  dropped: string[];
  /** Rows in the dropped partitions, from the planner's statistics (not counted). */
  rowsDropped: number;
  /** Days over but kept because a room of theirs is not marked expired yet. */
  waiting: string[];
  /** Rows of messages_default this run copied into their days (the move's bulk copy). */
  rowsMoved: number;
  /** A move out of messages_default is still under way at the end of this run (the budget ran out). */
  moving: boolean;
  /** Rows of live rooms this run moved out of an earlier expiry into their room's. */
  rowsRelocated: number;
  /** Rows of expired (closed) rooms this run deleted from an earlier expiry. */
  rowsDeleted: number;
  /** Rooms that still list an earlier expiry at the end of this run (the budget ran out). */
  relocating: boolean;
  /** The steps that failed. */
  failed: PartitionStepFailure[];
}

const AHEAD_DAYS = 2;
/** ROOM_TTL_SECONDS allows 30 days; a room's day needs its partition before its first message. */
const MAX_AHEAD_DAYS = 40;
/** A batch of 5,000 rows is a few hundred ms of one connection, well inside statement_timeout. */
const MOVE_BATCH_ROWS = 5_000;
/** Three quarters of the job's 60 s interval, as the room sweep's budget. */
const MOVE_BUDGET_MS = 45_000;
/** Sends wait at most this long behind one attempt of the move's locked end. */
const MOVE_LOCK_WAIT_MS = 500;
/** Attempts of the locked end per run; then the step fails and the next run goes on. */
const MOVE_FINISH_ATTEMPTS = 5;

/** About 15 ms of the room's row lock per batch (200,000 rows moved in 1.4 s as one statement). */
const RELOCATE_BATCH_ROWS = 2_000;
/** What is left of the job's interval after the move out of messages_default's budget. */
const RELOCATE_BUDGET_MS = 10_000;
/** Rooms read per look at the worklist; the run reads it again while its budget lasts. */
const RELOCATE_ROOMS = 100;

const isLockTimeout = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '55P03';

/** The run's steps failed: thrown by the job once every other step is done (the failure metric). */
export class PartitionMaintenanceError extends Error {
  constructor(readonly result: PartitionMaintenanceResult) {
    const steps = result.failed.map((failure) => (failure.day ? `${failure.step} ${failure.day}` : failure.step));
    const first = result.failed[0]?.error;
    super(`partition maintenance: ${steps.join(', ')} failed${first instanceof Error ? ` (${first.message})` : ''}`, { cause: first });
    this.name = 'PartitionMaintenanceError';
  }
}

/** Whether a step of the run is to stop: its budget spent, or the worker stopping. */
function budget(deps: PartitionMaintenanceDeps, ms: number): () => boolean {
  const deadline = Date.now() + ms;
  return () => Date.now() >= deadline || deps.stopping?.aborted === true;
}

/**
 * Empties messages_default into its days (migration 0010, docs/partitions.md): bulk copy, then
 * the changes made meanwhile, then the short locked end. Returns whether messages_default is
 * empty (or a move was finished) at the end; false when the budget ran out first.
 */
async function moveDefault(deps: PartitionMaintenanceDeps, result: PartitionMaintenanceResult): Promise<boolean> {
  const { partitions } = deps;
  const batchRows = deps.moveBatchRows ?? MOVE_BATCH_ROWS;
  const timeUp = budget(deps, deps.moveBudgetMs ?? MOVE_BUDGET_MS);
  const pause = deps.moveBatchPauseMs ?? 0;
  if (!(await partitions.beginMove())) return true;
  for (;;) {
    const copied = await partitions.copyBatch(batchRows);
    result.rowsMoved += copied;
    if (copied === 0) break;
    if (pause > 0) await delay(pause);
    if (timeUp()) return false;
  }
  // Rows sent (or changed) in messages_default during the copy: until a batch finds fewer than
  // it could take, so that what the locked end replays is what arrived during one batch.
  for (;;) {
    const replayed = await partitions.replayBatch(batchRows);
    if (replayed < batchRows) break;
    if (pause > 0) await delay(pause);
    if (timeUp()) return false;
  }
  for (let attempt = 1; ; attempt++) {
    try {
      result.created.push(...(await partitions.finishMove(deps.moveLockWaitMs ?? MOVE_LOCK_WAIT_MS)));
      return true;
    } catch (error) {
      // A reader of messages_default (or a long send) held a lock past the short wait: let the
      // sends through, catch up with what they wrote, and try again.
      if (!isLockTimeout(error) || attempt >= MOVE_FINISH_ATTEMPTS || timeUp()) throw error;
      deps.logger.info({ attempt }, 'messages_default move: its end waited too long for a lock, trying again');
      await delay(Math.max(pause, 100));
      await partitions.replayBatch(batchRows);
    }
  }
}

/**
 * Empties the earlier expiries rooms list (an extend or close leaves the room's messages where
 * they are, room-lifetime.repository.ts): a live room's messages move to its expiry, an expired
 * room's are deleted, a short batch at a time under the room's lock (`relocateBatch`), until no
 * room lists one or the budget runs out (the next run goes on: the worklist is the data). Returns
 * whether none is left.
 */
async function relocateEarlier(deps: PartitionMaintenanceDeps, result: PartitionMaintenanceResult): Promise<boolean> {
  const { partitions } = deps;
  const batchRows = deps.relocateBatchRows ?? RELOCATE_BATCH_ROWS;
  const timeUp = budget(deps, deps.relocateBudgetMs ?? RELOCATE_BUDGET_MS);
  const pause = deps.moveBatchPauseMs ?? 0;
  for (;;) {
    const rooms = await partitions.roomsWithEarlierExpiries(RELOCATE_ROOMS);
    if (rooms.length === 0) return true;
    for (const roomId of rooms) {
      for (;;) {
        const batch = await partitions.relocateBatch(roomId, batchRows);
        result.rowsRelocated += batch.moved;
        result.rowsDeleted += batch.deleted;
        if (batch.remaining === 0) break;
        if (pause > 0) await delay(pause);
        if (timeUp()) return false;
      }
      if (timeUp()) return false;
    }
  }
}

/**
 * Keeps the day partitions of `messages` (docs/partitions.md): empties messages_default into its
 * days (rows sent while their day had no partition), creates days ahead, for today .. today + 2
 * and for every day a live room expires on, so the gateway's insert finds its partition; moves
 * the messages an extend left under a room's earlier expiry to its expiry (deletes a closed
 * room's); drops a day once it is over, every room of it is marked expired by the sweep and no
 * room not yet marked lists an earlier expiry in it: its messages were
 * unreadable since their room expired, and the drop frees them at the cost of a catalog change,
 * where a DELETE would rewrite and vacuum every row. Runs at worker start and on its schedule;
 * idempotent. A step that fails (one day's creation or drop, the move) is logged and recorded in
 * `failed`, and the run goes on with the others: one bad day does not keep the others from being
 * created, or the expired ones from being dropped.
 */
export async function runPartitionMaintenance(deps: PartitionMaintenanceDeps): Promise<PartitionMaintenanceResult> {
  const { partitions, logger } = deps;
  const result: PartitionMaintenanceResult = {
    created: [],
    dropped: [],
    rowsDropped: 0,
    waiting: [],
    rowsMoved: 0,
    moving: false,
    rowsRelocated: 0,
    rowsDeleted: 0,
    relocating: false,
    failed: [],
  };
  async function step<T>(name: PartitionStepFailure['step'], day: string | undefined, work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (error) {
      result.failed.push(day === undefined ? { step: name, error } : { step: name, day, error });
      logger.error({ err: error, step: name, ...(day === undefined ? {} : { day }) }, 'partition maintenance step failed');
      return undefined;
    }
  }

  // First: a day waiting in messages_default gets its partition, then may be dropped below.
  const defaultEmptied = await step('move-default', undefined, () => moveDefault(deps, result));
  result.moving = defaultEmptied === false;
  if (result.moving) {
    logger.warn({ rowsMoved: result.rowsMoved }, 'messages_default still being moved into its days: the next run goes on');
  }

  // While a move is under way (unfinished, or failed) the days it will attach are its own, and
  // creating another would scan messages_default under the rooms lock: created once it is done.
  if (defaultEmptied === true) {
    for (const day of (await step('wanted-days', undefined, () => partitions.wantedDays(deps.aheadDays ?? AHEAD_DAYS, MAX_AHEAD_DAYS))) ?? []) {
      if (await step('create', day, () => partitions.ensure(day))) result.created.push(day);
    }
  }

  // After the creations (a live room's messages move into its expiry's day, which exists now)
  // and before the drops (a day emptied here may go in this same run).
  result.relocating = (await step('relocate', undefined, () => relocateEarlier(deps, result))) === false;

  // Oldest first; the repository re-checks each day against the database's clock.
  const today = new Date().toISOString().slice(0, 10);
  for (const { day } of (await step('list', undefined, () => partitions.list())) ?? []) {
    if (day >= today || deps.stopping?.aborted) break;
    const outcome = await step('drop', day, () => partitions.dropIfExpired(day, deps.graceMs ?? 0));
    if (outcome?.status === 'dropped') {
      result.dropped.push(day);
      result.rowsDropped += outcome.estimatedRows;
    } else if (outcome?.status === 'rooms-pending') {
      result.waiting.push(day);
    }
  }

  if (result.created.length > 0 || result.dropped.length > 0 || result.rowsMoved > 0 || result.rowsRelocated > 0 || result.rowsDeleted > 0) {
    const { failed: _failed, ...summary } = result;
    logger.info(summary, 'message partitions');
  }
  if (result.relocating) logger.warn({ rowsRelocated: result.rowsRelocated, rowsDeleted: result.rowsDeleted }, 'rooms still listing an earlier expiry: the next run goes on');
  if (result.waiting.length > 0) logger.warn({ days: result.waiting }, 'day partitions kept: rooms not swept yet');
  return result;
}

/**
 * The `partitionMaintenance` job: one run, its dropped rows counted in the worker's metrics. A run
 * with a failed step fails once every other step is done (PartitionMaintenanceError): the
 * runner counts it in `chat_worker_job_failures_total` (ChatWorkerJobsFailing) and logs it.
 */
export function partitionMaintenanceJob(
  deps: PartitionMaintenanceDeps,
  metrics: WorkerMetrics,
): (payload?: unknown, stopping?: AbortSignal) => Promise<PartitionMaintenanceResult> {
  return async (_payload, stopping) => {
    const result = await runPartitionMaintenance(stopping ? { ...deps, stopping } : deps);
    metrics.rowsPurged.inc({ table: 'messages' }, result.rowsDropped + result.rowsDeleted);
    if (result.failed.length > 0) throw new PartitionMaintenanceError(result);
    return result;
  };
}
