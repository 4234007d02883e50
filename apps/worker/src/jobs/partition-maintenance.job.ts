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
}

/** One step of a run that failed; the run went on with the others. */
export interface PartitionStepFailure {
  step: 'wanted-days' | 'create' | 'list' | 'drop';
  /** The day of a `create` or `drop`. */
  day?: string;
  error: unknown;
}

export interface PartitionMaintenanceResult {
  /** Days (YYYY-MM-DD) whose partition this run created. */
  created: string[];
  /** Days whose partition this run dropped. */
  dropped: string[];
  /** Rows in the dropped partitions, from the planner's statistics (not counted). */
  rowsDropped: number;
  /** Days over but kept because a room of theirs is not marked expired yet. */
  waiting: string[];
  /** The steps that failed. */
  failed: PartitionStepFailure[];
}

const AHEAD_DAYS = 2;
/** ROOM_TTL_SECONDS allows 30 days; a room's day needs its partition before its first message. */
const MAX_AHEAD_DAYS = 40;

/** The run's steps failed: thrown by the job once every other step is done (the failure metric). */
export class PartitionMaintenanceError extends Error {
  constructor(readonly result: PartitionMaintenanceResult) {
    const steps = result.failed.map((failure) => (failure.day ? `${failure.step} ${failure.day}` : failure.step));
    const first = result.failed[0]?.error;
    super(`partition maintenance: ${steps.join(', ')} failed${first instanceof Error ? ` (${first.message})` : ''}`, { cause: first });
    this.name = 'PartitionMaintenanceError';
  }
}

/**
 * Keeps the day partitions of `messages` (docs/partitions.md): creates them ahead, for today
 * .. today + 2 and for every day a live room expires on, so the gateway's insert finds its
 * partition (messages_default catches the rest and is emptied here); drops a day once it is
 * over and every room of it is marked expired by the sweep: its messages were unreadable since
 * their room expired, and the drop frees them at the cost of a catalog change, where a DELETE
 * would rewrite and vacuum every row. Runs at worker start and on its schedule; idempotent. A
 * step that fails (one day's creation or drop) is logged and recorded in `failed`, and the run
 * goes on with the others: one bad day does not keep the others from being created, or the
 * expired ones from being dropped.
 */
export async function runPartitionMaintenance(deps: PartitionMaintenanceDeps): Promise<PartitionMaintenanceResult> {
  const { partitions, logger } = deps;
  const result: PartitionMaintenanceResult = { created: [], dropped: [], rowsDropped: 0, waiting: [], failed: [] };
  async function step<T>(name: PartitionStepFailure['step'], day: string | undefined, work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (error) {
      result.failed.push(day === undefined ? { step: name, error } : { step: name, day, error });
      logger.error({ err: error, step: name, ...(day === undefined ? {} : { day }) }, 'partition maintenance step failed');
      return undefined;
    }
  }

  // Creation first: a day waiting in messages_default gets its partition, then may be dropped.
  for (const day of (await step('wanted-days', undefined, () => partitions.wantedDays(deps.aheadDays ?? AHEAD_DAYS, MAX_AHEAD_DAYS))) ?? []) {
    if (await step('create', day, () => partitions.ensure(day))) result.created.push(day);
  }

  // Oldest first; the repository re-checks each day against the database's clock.
  const today = new Date().toISOString().slice(0, 10);
  for (const { day } of (await step('list', undefined, () => partitions.list())) ?? []) {
    if (day >= today) break;
    const outcome = await step('drop', day, () => partitions.dropIfExpired(day, deps.graceMs ?? 0));
    if (outcome?.status === 'dropped') {
      result.dropped.push(day);
      result.rowsDropped += outcome.estimatedRows;
    } else if (outcome?.status === 'rooms-pending') {
      result.waiting.push(day);
    }
  }

  if (result.created.length > 0 || result.dropped.length > 0) {
    const { failed: _failed, ...summary } = result;
    logger.info(summary, 'message partitions');
  }
  if (result.waiting.length > 0) logger.warn({ days: result.waiting }, 'day partitions kept: rooms not swept yet');
  return result;
}

/**
 * The `partitionMaintenance` job: one run, its dropped rows counted in the worker's metrics. A run
 * with a failed step fails once every other step is done (PartitionMaintenanceError): the
 * runner counts it in `chat_worker_job_failures_total` (ChatWorkerJobsFailing) and logs it.
 */
export function partitionMaintenanceJob(deps: PartitionMaintenanceDeps, metrics: WorkerMetrics): () => Promise<PartitionMaintenanceResult> {
  return async () => {
    const result = await runPartitionMaintenance(deps);
    metrics.rowsPurged.inc({ table: 'messages' }, result.rowsDropped);
    if (result.failed.length > 0) throw new PartitionMaintenanceError(result);
    return result;
  };
}
