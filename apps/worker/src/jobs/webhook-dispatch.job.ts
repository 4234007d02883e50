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
}

/** Rooms looked at per endpoint and run; the rest wait for the next run. */
const ROOMS_PER_RUN = 500;
/** Caught-up rooms whose pending flag is lowered per run; the rest wait for the next run. */
const SETTLE_PER_RUN = 2000;

/**
 * Webhooks, step one (docs/webhooks.md): per endpoint, the rooms whose change feed is past the
 * endpoint's cursor get a delivery job. Only rooms flagged `webhook_pending` (raised by any change
 * of the room, lowered here once every endpoint caught up) are read, by index. The job id names the endpoint and room, so a room has
 * at most one delivery queued, running or backing off at a time: its events go in order, and
 * a room that is already being delivered is not queued twice (BullMQ ignores the add). It only
 * reads what is committed, after the fact: a send never waits for a webhook.
 */
export async function runWebhookDispatch(deps: WebhookDispatchDeps): Promise<{ queued: number }> {
  const endpointIds = deps.endpoints.map((endpoint) => endpoint.id);
  const reflagged = await deps.cursors.syncEndpoints(endpointIds);
  if (reflagged > 0) deps.logger.info({ rooms: reflagged }, 'webhook endpoint added: every room with changes is pending for it');
  // Rooms every endpoint has caught up with leave the pending index the dispatch reads.
  await deps.cursors.settleDelivered(endpointIds, SETTLE_PER_RUN);
  let queued = 0;
  for (const endpoint of deps.endpoints) {
    const behind = await deps.cursors.roomsBehind(endpoint.id, ROOMS_PER_RUN);
    if (behind.length === 0) continue;
    const entry = JOB_CATALOG.webhookDelivery;
    await deps.deliveries.addBulk(
      behind.map((room) => ({
        name: entry.jobName,
        data: { endpointId: endpoint.id, roomId: room.roomId },
        opts: { ...entry.options, jobId: webhookDeliveryJobId(endpoint.id, room.roomId) },
      })),
    );
    queued += behind.length;
  }
  return { queued };
}
