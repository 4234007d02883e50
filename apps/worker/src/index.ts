export { loadWorkerConfig, type WorkerConfig } from './config.ts';
export { startWorker, PRESENCE_STALE_AFTER_MS, type WorkerApp } from './worker.ts';
export { runRoomSweep } from './jobs/room-sweep.job.ts';
export { runPresenceGc } from './jobs/presence-gc.job.ts';
export { runPartitionMaintenance } from './jobs/partition-maintenance.job.ts';
