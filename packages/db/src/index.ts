export * from './client.ts';
export * from './migrate.ts';
export * as schema from './schema.ts';
export * from './repositories/memberships.repository.ts';
export * from './repositories/messages.repository.ts';
export * from './repositories/rooms.repository.ts';
export * from './repositories/users.repository.ts';
export * from './repositories/room-expiry.repository.ts';
export * from './repositories/message-partitions.repository.ts';
