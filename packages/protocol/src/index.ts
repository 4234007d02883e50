export * from './errors.ts';
export * from './events.ts';
export * from './fields.ts';
export * from './http.ts';
export * from './message-rules.ts';
export * from './nickname-mask.ts';
export * from './text-rules.ts';
export * from './event-reference.ts';
