export * from './bus-clients.ts';
export * from './bus-config.ts';
export * from './redis-endpoint.ts';
export * from './redis-env.ts';
export * from './sharded-emitter.ts';
export * from './subscription-tracker.ts';
export * from './state-client.ts';
