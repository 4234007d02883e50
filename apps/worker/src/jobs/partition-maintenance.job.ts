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

export interface PartitionMaintenanceResult {
  /** Days (YYYY-MM-DD) whose partition this run created. */
  created: string[];
  /** Days whose partition this run dropped. */
  dropped: string[];
  /** Rows in the dropped partitions, from the planner's statistics (not counted). */
  rowsDropped: number;
  /** Days over but kept because a room of theirs is not marked expired yet. */
  waiting: string[];
}

const AHEAD_DAYS = 2;
/** ROOM_TTL_SECONDS allows 30 days; a room's day needs its partition before its first message. */
const MAX_AHEAD_DAYS = 40;

/**
 * Keeps the day partitions of `messages` (docs/partitions.md): creates them ahead, for today
 * .. today + 2 and for every day a live room expires on, so the gateway's insert finds its
 * partition (messages_default catches the rest and is emptied here); drops a day once it is
 * over and every room of it is marked expired by the sweep: its messages were unreadable since
 * their room expired, and the drop frees them at the cost of a catalog change, where a DELETE
 * would rewrite and vacuum every row. Runs at worker start and on its schedule; idempotent.
 */
export async function runPartitionMaintenance(deps: PartitionMaintenanceDeps): Promise<PartitionMaintenanceResult> {
  const { partitions, logger } = deps;
  const result: PartitionMaintenanceResult = { created: [], dropped: [], rowsDropped: 0, waiting: [] };

  // Creation first: a day waiting in messages_default gets its partition, then may be dropped.
  for (const day of await partitions.wantedDays(deps.aheadDays ?? AHEAD_DAYS, MAX_AHEAD_DAYS)) {
    if (await partitions.ensure(day)) result.created.push(day);
  }

  // Oldest first; the repository re-checks each day against the database's clock.
  const today = new Date().toISOString().slice(0, 10);
  for (const { day } of await partitions.list()) {
    if (day >= today) break;
    const outcome = await partitions.dropIfExpired(day, deps.graceMs ?? 0);
    if (outcome.status === 'dropped') {
      result.dropped.push(day);
      result.rowsDropped += outcome.estimatedRows;
    } else if (outcome.status === 'rooms-pending') {
      result.waiting.push(day);
    }
  }

  if (result.created.length > 0 || result.dropped.length > 0) logger.info(result, 'message partitions');
  if (result.waiting.length > 0) logger.warn({ days: result.waiting }, 'day partitions kept: rooms not swept yet');
  return result;
}

/** The `partitionMaintenance` job: one run, its dropped rows counted in the worker's metrics. */
export function partitionMaintenanceJob(deps: PartitionMaintenanceDeps, metrics: WorkerMetrics): () => Promise<PartitionMaintenanceResult> {
  return async () => {
    const result = await runPartitionMaintenance(deps);
    metrics.rowsPurged.inc({ table: 'messages' }, result.rowsDropped);
    return result;
  };
}
