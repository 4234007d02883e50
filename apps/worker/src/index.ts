export { ENV_VARIABLES as WORKER_ENV_VARIABLES, envDefaults as workerEnvDefaults, loadWorkerConfig, type WorkerConfig } from './config.ts';
export { startWorker, type WorkerApp } from './app.ts';
export { runRoomSweep } from './jobs/room-sweep.job.ts';
export { runPresenceGc, PRESENCE_STALE_AFTER_MS } from './jobs/presence-gc.job.ts';
export { runPartitionMaintenance, partitionMaintenanceJob, PartitionMaintenanceError } from './jobs/partition-maintenance.job.ts';
export { runRoomOccupancy } from './jobs/room-occupancy.job.ts';
export { runWebhookDelivery } from './jobs/webhook-delivery.job.ts';
export { runWebhookDispatch, type SettlePass } from './jobs/webhook-dispatch.job.ts';
export { createWorkerMetrics } from './metrics.ts';
