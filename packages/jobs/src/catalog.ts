import type { JobsOptions } from 'bullmq';
import { z } from 'zod';

/** A scheduled job's payload: none. */
const noPayload = z.object({}).strict();

/**
 * Options of the scheduled jobs: one attempt (the next run comes on schedule anyway, and every
 * one of them is idempotent), and a short history of runs kept for inspection.
 */
const scheduledRunOptions = { removeOnComplete: 100, removeOnFail: 500, attempts: 1 } as const satisfies JobsOptions;

const endpointIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

/**
 * The job catalog: every queue's name, payload schema, options and schedule, in one place.
 * The worker's handler map is typed as exhaustive over it, and payloads are parsed on dequeue.
 */
export const JOB_CATALOG = {
  roomSweep: {
    queue: 'room-sweep',
    jobName: 'sweep',
    payload: noPayload,
    /** Expiry notices, expiry, purge and tombstone removal; idempotent, so re-runs are harmless. */
    everyMs: 2000,
    options: scheduledRunOptions,
  },
  presenceGc: {
    queue: 'presence-gc',
    jobName: 'collect',
    payload: noPayload,
    /** Finds pods whose heartbeat stopped and takes their users offline. */
    everyMs: 5000,
    options: scheduledRunOptions,
  },
  partitionMaintenance: {
    queue: 'message-partitions',
    jobName: 'maintain',
    payload: noPayload,
    /** Creates day partitions of `messages` ahead and drops expired days; idempotent. */
    everyMs: 60_000,
    options: scheduledRunOptions,
  },
  roomOccupancy: {
    queue: 'room-occupancy',
    jobName: 'look',
    payload: noPayload,
    /** Records room-occupied / room-vacated for rooms whose presence or membership changed a grace ago. */
    everyMs: 1000,
    options: scheduledRunOptions,
  },
  webhookDispatch: {
    queue: 'webhook-dispatch',
    jobName: 'dispatch',
    payload: noPayload,
    /**
     * Reads, per webhook endpoint, which delivery lanes hold rooms with changes past the
     * endpoint's cursor, and adds one `webhookDelivery` job per such lane (docs/webhooks.md).
     * After COMMIT, never in the send path.
     */
    everyMs: 1000,
    options: scheduledRunOptions,
  },
  webhookDelivery: {
    queue: 'webhook-delivery',
    jobName: 'deliver',
    /**
     * One endpoint and delivery lane (0-15, `WebhookCursorsRepository.lanesBehind`): at most one such job exists at a time (its job id), and a room is
     * always in the same lane, so a room's events go in order. A job queued by an earlier
     * version named one room instead; it is dropped, the dispatch queues that room's lane.
     */
    payload: z.union([
      z.object({ endpointId: endpointIdSchema, lane: z.number().int().min(0).max(15) }).strict(),
      z.object({ endpointId: endpointIdSchema, roomId: z.uuid() }).strict(),
    ]),
    /** Added by webhookDispatch, not scheduled. */
    everyMs: null,
    /**
     * Exponential back-off, 1 s doubling up to 32 s; once the attempts are spent the job is
     * removed, and the next dispatch adds it again: a receiver that is down is retried for as
     * long as it is down, at least every minute or so, from where its cursor stands.
     */
    options: {
      attempts: 7,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: true,
      removeOnFail: true,
    } satisfies JobsOptions,
  },
} as const;

export type JobKey = keyof typeof JOB_CATALOG;
export type JobPayload<K extends JobKey> = z.infer<(typeof JOB_CATALOG)[K]['payload']>;

/** The id of the one delivery job of an endpoint and lane (BullMQ ids may not contain `:`). */
export const webhookDeliveryJobId = (endpointId: string, lane: number): string => `wh.${endpointId}.lane${lane}`;

export const JOB_KEYS = Object.keys(JOB_CATALOG) as JobKey[];

/** Every app names queues through this, so BullMQ keys never collide between deployments. */
export function bullPrefix(redisPrefix: string): string {
  return `${redisPrefix}:bull`;
}
