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
}

/** The pending room the last run's settle pass examined last; null: start from the first. */
export interface SettlePass {
  after: string | null;
}

/** Pending rooms the settle pass examines per run, caught up or not. */
const SETTLE_PER_RUN = 500;

/**
 * Webhooks, step one (docs/webhooks.md): per endpoint, each delivery lane holding a room whose
 * change feed is past the endpoint's cursor gets a delivery job. Only rooms flagged
 * `webhook_pending` (raised by any change of the room, lowered by this job's settle pass once
 * every endpoint caught up) are read, by index. The job id names the endpoint and lane, so a
 * lane has at most one delivery queued, running or backing off at a time: a room's events go in
 * order, and a lane that is already being delivered is not queued twice (BullMQ ignores the
 * add). It only reads what is committed, after the fact: a send never waits for a webhook.
 */
export async function runWebhookDispatch(deps: WebhookDispatchDeps): Promise<{ queued: number }> {
  const endpointIds = deps.endpoints.map((endpoint) => endpoint.id);
  const reflagged = await deps.cursors.syncEndpoints(endpointIds);
  if (reflagged > 0) deps.logger.info({ rooms: reflagged }, 'webhook endpoint added: every room with changes is pending for it');
  // Rooms every endpoint has caught up with leave the pending index the dispatch reads: a
  // slice of the pending rooms per run, so that its cost stays the same at any number of busy
  // rooms, and every pending room is looked at every pending ÷ SETTLE_PER_RUN runs.
  const pass = await deps.cursors.settleDelivered(endpointIds, { after: deps.settlePass.after, limit: SETTLE_PER_RUN });
  deps.settlePass.after = pass.last;
  let queued = 0;
  for (const endpoint of deps.endpoints) {
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
  }
  return { queued };
}
