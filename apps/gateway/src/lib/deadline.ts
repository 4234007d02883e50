// Shared with the worker, which bounds its Postgres calls the same way (@chat/runtime).
export { withinDeadline } from '@chat/runtime';
