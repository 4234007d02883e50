import { AppError } from '@chat/protocol';
import { isDatabaseUnavailable } from '@chat/db';
import { BatchStalledError } from './services/message-writer.ts';

/** Any thrown value → the protocol error the client should see. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (isDatabaseUnavailable(error) || isRedisUnavailable(error) || error instanceof BatchStalledError) {
    return new AppError('UNAVAILABLE');
  }
  return new AppError('INTERNAL');
}

function isRedisUnavailable(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  return /Connection is closed|Stream isn't writeable|max retries per request|ECONNREFUSED/i.test(message);
}
