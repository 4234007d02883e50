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
  /** Lanes each endpoint is delivering in this process now (one map for all runs). */
  lanesRunning: Map<string, number>;
  /** The most lanes of one endpoint this process delivers at a time (webhookLaneShare). */
  lanesPerEndpoint: number;
  /**
   * Aborted when the worker is stopping: no further POST (the one in flight is let finish, its
   * cursors moved); the lane's cursors stand where the last acknowledged POST left them, and
   * the next dispatch queues the lane again.
   */
  stopping?: AbortSignal | undefined;
}

/**
 * The lanes one endpoint may deliver at a time in a worker process: its fair share of the
 * process's WEBHOOK_CONCURRENCY (at least one). Without it, a receiver that accepts the
 * connection and never answers held every slot for WEBHOOK_TIMEOUT_MS, again at each retry, and
 * no other endpoint was delivered meanwhile: its lanes, queued behind, waited. With it every
 * endpoint keeps its share, however many others hang (as long as there are no more endpoints
 * than slots). One endpoint alone has them all.
 */
export function webhookLaneShare(concurrency: number, endpoints: number): number {
  return Math.max(1, Math.floor(concurrency / Math.max(1, endpoints)));
}

/** A POST the receiver did not acknowledge with a 2xx in time: the job fails and is retried. */
export class WebhookDeliveryError extends Error {
  constructor(endpointId: string, reason: string) {
    // The endpoint's id only: its URL may carry a credential in its query.
    super(`webhook ${endpointId}: ${reason}`);
    this.name = 'WebhookDeliveryError';
  }
}

/** A run reads again only while it has made fewer POSTs than this; a busier lane is continued by the next dispatch. */
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
  await discardBody(response);
  if (response.status < 200 || response.status > 299) throw new WebhookDeliveryError(endpoint.id, `answered ${response.status}`);
}

/** What of an answer's body is read (and dropped) so that the connection can serve the next POST. */
const ANSWER_BODY_READ_BYTES = 64 * 1024;

/**
 * Drops the answer's body unread beyond ANSWER_BODY_READ_BYTES: nobody looks at it (it is never
 * logged), and reading it whole held a receiver's endless or huge answer in the worker's memory
 * until WEBHOOK_TIMEOUT_MS, and held the POST's acknowledgement as long. A short body is read
 * to its end, which lets the connection be kept alive; a longer one is cancelled.
 */
async function discardBody(response: Response): Promise<void> {
  const reader = response.body?.getReader();
  if (!reader) return;
  let read = 0;
  try {
    while (read <= ANSWER_BODY_READ_BYTES) {
      const chunk = await reader.read();
      if (chunk.done) return;
      read += chunk.value.byteLength;
    }
    await reader.cancel();
  } catch {
    // A body cut short (or timed out) changes nothing: the status decides.
  }
}

/**
 * Webhooks, step two (docs/webhooks.md): delivers one delivery lane of one endpoint. One
 * statement reads the lane's rooms that are behind, least recently delivered first, each with
 * the changes after the endpoint's cursor; they go out oldest first per room, packed into POSTs
 * of up to `batchSize` events (of one room or several), one POST at a time, and after each
 * acknowledged POST one statement moves the cursors of the rooms it carried. A failed POST
 * fails the job, which BullMQ retries with exponential back-off from the cursors: at least
 * once, in order per room (a room is always in the same lane, and a lane has one job at a
 * time), each event carrying `(roomId, changeSeq)` for the receiver to drop duplicates by.
 * Events the endpoint's `kinds` filter out are skipped (the cursor passes them).
 */
export async function runWebhookDelivery(deps: WebhookDeliveryDeps, payload: JobPayload<'webhookDelivery'>) {
  const endpoint = deps.endpoints.find((candidate) => candidate.id === payload.endpointId);
  // Removed from the configuration since the job was queued, queued by a replica configured
  // otherwise (a rolling update that changes the endpoints: the queue is shared, and the next
  // dispatch by a replica that has the endpoint queues the lane again; docs/webhooks.md,
  // "Changing the endpoints"), or queued by an earlier version for one room (the dispatch queues
  // that room's lane). Dropped: no POST, no cursor moved.
  if (!endpoint || !('lane' in payload)) return { delivered: 0 };
  const running = deps.lanesRunning.get(endpoint.id) ?? 0;
  if (running >= deps.lanesPerEndpoint) {
    // The endpoint has its share running here: done without a POST, so the slot goes to the
    // next job; the lane is still behind, and the next dispatch queues it again.
    deps.logger.debug({ endpoint: endpoint.id, lane: payload.lane }, 'webhook lane deferred: the endpoint has its share of deliveries running');
    return { delivered: 0, deferred: true };
  }
  deps.lanesRunning.set(endpoint.id, running + 1);
  try {
    return await deliverLane(deps, endpoint, payload.lane);
  } finally {
    deps.lanesRunning.set(endpoint.id, (deps.lanesRunning.get(endpoint.id) ?? 1) - 1);
  }
}

async function deliverLane(deps: WebhookDeliveryDeps, endpoint: WebhookEndpoint, lane: number) {
  const wanted = endpoint.kinds ? new Set<string>(endpoint.kinds) : null;
  let delivered = 0;
  let posts = 0;
  let events: RoomChange[] = [];
  // When the oldest of them committed (ms), for the lag metric.
  let oldestAt = Number.POSITIVE_INFINITY;
  // Where each room's cursor goes once the events read so far are acknowledged.
  let moves = new Map<string, number>();
  const stopping = () => deps.stopping?.aborted === true;
  const flush = async () => {
    if (events.length > 0) {
      try {
        await post(endpoint, events, deps.timeoutMs);
      } catch (error) {
        deps.metrics.webhookPosts.inc({ webhook: endpoint.id, outcome: 'failed' });
        throw error;
      }
      posts += 1;
      delivered += events.length;
      deps.metrics.webhookPosts.inc({ webhook: endpoint.id, outcome: 'delivered' });
      deps.metrics.webhookEvents.inc({ webhook: endpoint.id }, events.length);
      if (Number.isFinite(oldestAt)) deps.metrics.webhookLag.observe({ webhook: endpoint.id }, Math.max(0, Date.now() - oldestAt) / 1000);
    }
    await deps.cursors.advance(endpoint.id, [...moves].map(([roomId, changeSeq]) => ({ roomId, changeSeq })));
    events = [];
    oldestAt = Number.POSITIVE_INFINITY;
    moves = new Map();
  };
  while (posts < MAX_POSTS_PER_RUN && !stopping()) {
    const backlog = await deps.changes.backlog(endpoint.id, lane, { rooms: deps.batchSize, perRoom: deps.batchSize });
    let moved = 0;
    for (const room of backlog) {
      if (room.rows.length === 0) {
        // Behind, yet nothing readable: the rest can never be delivered (their day partition
        // was dropped). Move past it, or the room would be read again every poll for good.
        const unreadable = await deps.changes.unreadableThrough(room.roomId, room.afterChangeSeq);
        if (unreadable !== null) moves.set(room.roomId, unreadable);
        moved += unreadable !== null ? 1 : 0;
        continue;
      }
      moved += 1;
      for (const row of room.rows) {
        const change = toRoomChange(row);
        if (wanted === null || wanted.has(change.event)) {
          if (events.length === deps.batchSize) {
            // Stopping: what was read and not posted is read again by the next run.
            if (stopping()) return { delivered };
            await flush();
          }
          events.push(change);
          if (row.changedAt) oldestAt = Math.min(oldestAt, row.changedAt.getTime());
        }
        moves.set(room.roomId, row.changeSeq);
      }
    }
    if (stopping()) break;
    await flush();
    // A full read may have left more behind in the lane; one that moved no cursor would only
    // read the same again.
    const full = backlog.length === deps.batchSize || backlog.some((room) => room.rows.length === deps.batchSize);
    if (!full || moved === 0) break;
  }
  return { delivered };
}
