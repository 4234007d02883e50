import type { JobsOptions } from 'bullmq';
import { z } from 'zod';

/**
 * The job catalog: every queue's name, payload schema, options and schedule, in one place.
 * The worker's handler map is typed as exhaustive over it, and payloads are parsed on dequeue.
 */
export const JOB_CATALOG = {
  roomSweep: {
    queue: 'room-sweep',
    jobName: 'sweep',
    payload: z.object({}).strict(),
    /** Expiry notices, expiry, purge and tombstone removal; idempotent, so re-runs are harmless. */
    everyMs: 2000,
    options: { removeOnComplete: 100, removeOnFail: 500, attempts: 1 } satisfies JobsOptions,
  },
  presenceGc: {
    queue: 'presence-gc',
    jobName: 'collect',
    payload: z.object({}).strict(),
    /** Finds pods whose heartbeat stopped and takes their users offline. */
    everyMs: 5000,
    options: { removeOnComplete: 100, removeOnFail: 500, attempts: 1 } satisfies JobsOptions,
  },
  partitionMaintenance: {
    queue: 'message-partitions',
    jobName: 'maintain',
    payload: z.object({}).strict(),
    /** Creates day partitions of `messages` ahead and drops expired days; idempotent. */
    everyMs: 60_000,
    options: { removeOnComplete: 100, removeOnFail: 500, attempts: 1 } satisfies JobsOptions,
  },
} as const;

export type JobKey = keyof typeof JOB_CATALOG;
export type JobPayload<K extends JobKey> = z.infer<(typeof JOB_CATALOG)[K]['payload']>;

export const JOB_KEYS = Object.keys(JOB_CATALOG) as JobKey[];

/** Every app names queues through this, so BullMQ keys never collide between deployments. */
export function bullPrefix(redisPrefix: string): string {
  return `${redisPrefix}:bull`;
}
