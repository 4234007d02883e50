export * from './client-payloads.ts';
export * from './errors.ts';
export * from './events.ts';
export * from './fields.ts';
export * from './http.ts';
export * from './message-rules.ts';
export * from './nickname-mask.ts';
export type { Check, FieldRule, PayloadOf } from './payload-contract.ts';
export * from './event-reference.ts';
