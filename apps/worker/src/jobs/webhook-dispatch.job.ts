import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { WebhookCursorsRepository } from '@chat/db';
import { JOB_CATALOG, webhookDeliveryJobId } from '@chat/jobs';
import type { WebhookEndpoint } from '../config.ts';

export interface WebhookDispatchDeps {
  endpoints: readonly WebhookEndpoint[];
  cursors: WebhookCursorsRepository;
  /** The webhook-delivery queue. */
  deliveries: Queue;
  logger: Logger;
  /** Where this process's settle pass goes on (one object for all runs; see below). */
  settlePass: SettlePass;
  /** Rooms per batch of a new endpoint's sync (`WebhookCursorsRepository.flagRooms`); default SYNC_BATCH_SIZE. */
  syncBatchSize?: number;
  /** How long a run goes on syncing new endpoints (at least one batch each); default SYNC_BUDGET_MS. */
  syncBudgetMs?: number;
  /** How long an endpoint no process names is kept (`WebhookCursorsRepository.syncEndpoints`); default WEBHOOK_ENDPOINT_GRACE_MS (@chat/db). */
  endpointGraceMs?: number;
}

/** The pending room the last run's settle pass examined last; null: start from the first. */
export interface SettlePass {
  after: string | null;
}

/** Pending rooms the settle pass examines per run, caught up or not. */
const SETTLE_PER_RUN = 500;

/**
 * Rooms a batch of a new endpoint's sync reads, in id order (tombstones and rooms without
 * changes included), flagging those with changes: 70-150 ms a batch that flags all 2,000 (at
 * 300,000 rooms, two busy cores), far within the worker's 5 s statement_timeout; a send to one
 * of its rooms waits at most that long.
 */
export const SYNC_BATCH_SIZE = 2000;

/**
 * Time a run spends on new endpoints' syncs, after the dispatch: 8,000-18,000 rooms a run at
 * 300,000 rooms, synced in 21 runs.
 */
export const SYNC_BUDGET_MS = 500;

/**
 * Webhooks, step one (docs/webhooks.md): per endpoint, each delivery lane holding a room whose
 * change feed is past the endpoint's cursor gets a delivery job. Only rooms flagged
 * `webhook_pending` (raised by any change of the room, lowered by this job's settle pass once
 * every endpoint caught up) are read, by index. The job id names the endpoint and lane, so a
 * lane has at most one delivery queued, running or backing off at a time: a room's events go in
 * order, and a lane that is already being delivered is not queued twice (BullMQ ignores the
 * add). It only reads what is committed, after the fact: a send never waits for a webhook.
 *
 * An endpoint that appears starts from the beginning of every room: after the dispatch, each
 * run flags its rooms a batch at a time (`WebhookCursorsRepository.flagRooms`) for up to
 * `syncBudgetMs`, and the next run goes on where it stopped, until every room is flagged. It is
 * dispatched meanwhile like any other: its rooms flagged so far are delivered from their start.
 *
 * Each worker process dispatches the endpoints of its own configuration, and records them
 * (`syncEndpoints`) without deleting another process's: replicas of a rolling update that
 * changes the endpoints converge without restarting each other's syncs, and the settle pass
 * lowers a room's flag only once every recorded endpoint has acknowledged it.
 *
 * Each step stands alone: a failure of the settle pass, of one endpoint's dispatch or of one
 * endpoint's sync is logged and the others still run; the run then fails with it (the job's
 * failure metric and log), and the next poll tries again.
 */
export async function runWebhookDispatch(deps: WebhookDispatchDeps): Promise<{ queued: number; flagged: number }> {
  const endpointIds = deps.endpoints.map((endpoint) => endpoint.id);
  const failures: unknown[] = [];
  const failed = (error: unknown, fields: Record<string, unknown>, message: string) => {
    failures.push(error);
    deps.logger.warn({ err: error, ...fields }, message);
  };

  let syncing: string[] = [];
  try {
    const recorded = await deps.cursors.syncEndpoints(endpointIds, deps.endpointGraceMs === undefined ? {} : { graceMs: deps.endpointGraceMs });
    syncing = recorded.syncing;
    for (const endpoint of recorded.added) deps.logger.info({ endpoint }, 'webhook endpoint added: its rooms with changes are flagged pending for it, a batch at a time');
    for (const endpoint of recorded.removed) deps.logger.info({ endpoint }, 'webhook endpoint removed: no worker process has been configured with it for the grace');
  } catch (error) {
    failed(error, {}, 'webhook endpoints not recorded');
  }

  // Rooms every endpoint (every recorded one, not only this process's) has caught up with
  // leave the pending index the dispatch reads: a
  // slice of the pending rooms per run, so that its cost stays the same at any number of busy
  // rooms, and every pending room is looked at every pending ÷ SETTLE_PER_RUN runs.
  try {
    const pass = await deps.cursors.settleDelivered(endpointIds, { after: deps.settlePass.after, limit: SETTLE_PER_RUN });
    deps.settlePass.after = pass.last;
  } catch (error) {
    failed(error, {}, 'webhook settle pass failed');
  }

  let queued = 0;
  for (const endpoint of deps.endpoints) {
    try {
      const lanes = await deps.cursors.lanesBehind(endpoint.id);
      if (lanes.length === 0) continue;
      const entry = JOB_CATALOG.webhookDelivery;
      await deps.deliveries.addBulk(
        lanes.map((lane) => ({
          name: entry.jobName,
          data: { endpointId: endpoint.id, lane },
          opts: { ...entry.options, jobId: webhookDeliveryJobId(endpoint.id, lane) },
        })),
      );
      queued += lanes.length;
    } catch (error) {
      failed(error, { endpoint: endpoint.id }, 'webhook dispatch of an endpoint failed');
    }
  }

  // New endpoints' syncs, within the budget: each gets at least one batch a run.
  let flagged = 0;
  const deadline = Date.now() + (deps.syncBudgetMs ?? SYNC_BUDGET_MS);
  for (const endpoint of syncing) {
    try {
      let batches = 0;
      while (batches === 0 || Date.now() < deadline) {
        const batch = await deps.cursors.flagRooms(endpoint, { batchSize: deps.syncBatchSize ?? SYNC_BATCH_SIZE });
        batches += 1;
        if (!batch) break;
        flagged += batch.flagged;
        if (batch.synced) {
          deps.logger.info({ endpoint }, 'webhook endpoint synced: every room with changes is pending for it');
          break;
        }
      }
    } catch (error) {
      failed(error, { endpoint }, 'webhook endpoint sync failed; the next run goes on where it stands');
    }
  }

  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, `webhook dispatch: ${failures.length} steps failed`);
  return { queued, flagged };
}
