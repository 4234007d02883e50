export * from './cluster.ts';
export * from './fixtures.ts';
export * from './worker.ts';
export * from './bus.ts';
export * from './table-scans.ts';
export * from './pod-metrics.ts';
export * from './cross-pod-round.ts';
export * from './acked-stream.ts';
