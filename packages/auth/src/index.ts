export * from './sign.ts';
export * from './verify.ts';
