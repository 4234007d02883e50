export * from './clients.ts';
export * from './cluster.ts';
export * from './http.ts';
