export * from './presence-store.ts';
export * from './occupancy-queue.ts';
