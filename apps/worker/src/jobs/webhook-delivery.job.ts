import type { Logger } from 'pino';
import { toRoomChange, type RoomChangesRepository, type WebhookCursorsRepository } from '@chat/db';
import type { JobPayload } from '@chat/jobs';
import type { RoomChange } from '@chat/protocol';
import type { WebhookEndpoint } from '../config.ts';
import type { WorkerMetrics } from '../metrics.ts';
import { WEBHOOK_HEADERS, signWebhook } from '../webhooks/webhook-signature.ts';

export interface WebhookDeliveryDeps {
  endpoints: readonly WebhookEndpoint[];
  cursors: WebhookCursorsRepository;
  changes: RoomChangesRepository;
  logger: Logger;
  metrics: WorkerMetrics;
  batchSize: number;
  timeoutMs: number;
}

/** A POST the receiver did not acknowledge with a 2xx in time: the job fails and is retried. */
export class WebhookDeliveryError extends Error {
  constructor(endpointId: string, reason: string) {
    // The endpoint's id only: its URL may carry a credential in its query.
    super(`webhook ${endpointId}: ${reason}`);
    this.name = 'WebhookDeliveryError';
  }
}

/** POSTs per job run; a busier room is continued by the next dispatch. */
const MAX_POSTS_PER_RUN = 20;

async function post(endpoint: WebhookEndpoint, events: RoomChange[], timeoutMs: number): Promise<void> {
  const rawBody = JSON.stringify({ events });
  const timestamp = Math.floor(Date.now() / 1000);
  let response: Response;
  try {
    response = await fetch(endpoint.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [WEBHOOK_HEADERS.timestamp]: String(timestamp),
        [WEBHOOK_HEADERS.signature]: signWebhook(endpoint.secret, timestamp, rawBody),
        [WEBHOOK_HEADERS.endpoint]: endpoint.id,
      },
      body: rawBody,
      // A redirect is not an acknowledgement, and is not followed with the signed body.
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw new WebhookDeliveryError(endpoint.id, (error as Error).name === 'TimeoutError' ? 'timed out' : 'unreachable');
  }
  await response.arrayBuffer().catch(() => undefined);
  if (response.status < 200 || response.status > 299) throw new WebhookDeliveryError(endpoint.id, `answered ${response.status}`);
}

/**
 * Webhooks, step two (docs/webhooks.md): delivers one room's feed to one endpoint from the
 * endpoint's cursor on, oldest first, in POSTs of up to `batchSize` events, and moves the
 * cursor after each acknowledged POST. A failed POST fails the job, which BullMQ retries with
 * exponential back-off from the same cursor: at least once, in order, each event carrying
 * `(roomId, changeSeq)` for the receiver to drop duplicates by. Events the endpoint's `kinds`
 * filter out are skipped (the cursor passes them).
 */
export async function runWebhookDelivery(deps: WebhookDeliveryDeps, payload: JobPayload<'webhookDelivery'>) {
  const endpoint = deps.endpoints.find((candidate) => candidate.id === payload.endpointId);
  // Removed from the configuration since the job was queued.
  if (!endpoint) return { delivered: 0 };
  const wanted = endpoint.kinds ? new Set<string>(endpoint.kinds) : null;
  let cursor = await deps.cursors.delivered(endpoint.id, payload.roomId);
  let delivered = 0;
  for (let posts = 0; posts < MAX_POSTS_PER_RUN; posts++) {
    const rows = await deps.changes.page(payload.roomId, cursor, deps.batchSize);
    if (rows.length === 0) {
      // Behind, yet nothing readable: the rest can never be delivered (their day partition was
      // dropped). Move past it, or the room would be queued again every poll for good.
      const unreadable = await deps.changes.unreadableThrough(payload.roomId, cursor);
      if (unreadable !== null) await deps.cursors.advance(endpoint.id, payload.roomId, unreadable);
      break;
    }
    const events = rows.map(toRoomChange).filter((change) => wanted === null || wanted.has(change.event));
    if (events.length > 0) {
      try {
        await post(endpoint, events, deps.timeoutMs);
      } catch (error) {
        deps.metrics.webhookPosts.inc({ endpoint: endpoint.id, outcome: 'failed' });
        throw error;
      }
      deps.metrics.webhookPosts.inc({ endpoint: endpoint.id, outcome: 'delivered' });
      deps.metrics.webhookEvents.inc({ endpoint: endpoint.id }, events.length);
    }
    const last = rows.at(-1)!.changeSeq;
    if (!(await deps.cursors.advance(endpoint.id, payload.roomId, last))) break;
    cursor = last;
    delivered += events.length;
    if (rows.length < deps.batchSize) break;
  }
  return { delivered };
}
