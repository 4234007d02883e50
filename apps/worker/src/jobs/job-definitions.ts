import { JOB_CATALOG, type JobKey, type JobPayload } from '@chat/jobs';
import type { WorkerConfig } from '../config.ts';
import type { WorkerDeps } from '../deps.ts';
import { PRESENCE_STALE_AFTER_MS, presenceGcJob } from './presence-gc.job.ts';
import { partitionMaintenanceJob } from './partition-maintenance.job.ts';
import { roomSweepJob } from './room-sweep.job.ts';
import { runWebhookDelivery, webhookLaneShare } from './webhook-delivery.job.ts';
import { runRoomOccupancy } from './room-occupancy.job.ts';
import { runWebhookDispatch, type SettlePass } from './webhook-dispatch.job.ts';

export interface JobDefinition<K extends JobKey> {
  /** How often the job's scheduler adds a run; null: not scheduled, other jobs add its runs. */
  everyMs: number | null;
  /** Runs at a time in this process (default: WORKER_CONCURRENCY). */
  concurrency?: number;
  /**
   * One run. `stopping` aborts when the worker is stopping (SIGTERM): a long run stops at its
   * next safe point and leaves the rest to the next run, so that the stop is done within
   * SHUTDOWN_TIMEOUT_MS instead of waiting out a 45 s move or a big room's purge.
   */
  run(payload: JobPayload<K>, stopping?: AbortSignal): Promise<unknown>;
}

/** Every job of the catalog (@chat/jobs) with its run; a job missing here fails to compile. */
export type JobDefinitions = { [K in JobKey]: JobDefinition<K> };

export function defineJobs(config: Readonly<WorkerConfig>, deps: WorkerDeps): JobDefinitions {
  const { logger, emitter, metrics, presence, repositories } = deps;
  const webhookSettlePass: SettlePass = { after: null };
  const webhookLanesRunning = new Map<string, number>();
  return {
    roomSweep: {
      everyMs: config.sweepIntervalMs,
      run: roomSweepJob(
        {
          expiry: repositories.expiry,
          emitter,
          logger,
          expiringNoticeMs: config.expiringNoticeMs,
          tombstoneTtlMs: config.tombstoneTtlMs,
          batchSize: config.sweepBatchSize,
          // Three quarters of the interval: a long sweep ends before the next is due.
          budgetMs: Math.floor(config.sweepIntervalMs * 0.75),
        },
        metrics,
      ),
    },
    presenceGc: {
      everyMs: config.presenceGcIntervalMs,
      run: presenceGcJob(
        {
          presence,
          occupancy: deps.occupancyQueue,
          memberships: repositories.memberships,
          messages: repositories.messages,
          users: repositories.users,
          emitter,
          logger,
          staleAfterMs: PRESENCE_STALE_AFTER_MS,
        },
        metrics,
      ),
    },
    partitionMaintenance: {
      everyMs: JOB_CATALOG.partitionMaintenance.everyMs,
      run: partitionMaintenanceJob({ partitions: repositories.partitions, logger }, metrics),
    },
    roomOccupancy: {
      everyMs: JOB_CATALOG.roomOccupancy.everyMs,
      run: (_payload, stopping) =>
        runRoomOccupancy({
          stopping,
          queue: deps.occupancyQueue,
          presence,
          memberships: repositories.memberships,
          occupancy: repositories.occupancy,
          emitter,
          logger,
        }),
    },
    webhookDispatch: {
      // Without endpoints there is nothing to dispatch: not scheduled.
      everyMs: config.webhooks.endpoints.length > 0 ? config.webhooks.pollIntervalMs : null,
      run: () =>
        runWebhookDispatch({
          endpoints: config.webhooks.endpoints,
          cursors: repositories.webhookCursors,
          deliveries: deps.queues.webhookDelivery,
          logger,
          settlePass: webhookSettlePass,
        }),
    },
    webhookDelivery: {
      everyMs: null,
      concurrency: config.webhooks.concurrency,
      run: (payload, stopping) =>
        runWebhookDelivery(
          {
            stopping,
            endpoints: config.webhooks.endpoints,
            cursors: repositories.webhookCursors,
            changes: repositories.changes,
            logger,
            metrics,
            batchSize: config.webhooks.batchSize,
            timeoutMs: config.webhooks.timeoutMs,
            lanesRunning: webhookLanesRunning,
            lanesPerEndpoint: webhookLaneShare(config.webhooks.concurrency, config.webhooks.endpoints.length),
          },
          payload,
        ),
    },
  };
}
