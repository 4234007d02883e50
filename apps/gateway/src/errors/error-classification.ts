import { AppError } from '@chat/protocol';
import { isDatabaseUnavailable as isPostgresUnavailable } from '@chat/db';
import { BatchStalledError } from '../infrastructure/message-writer.ts';

/**
 * The one place that knows what a thrown value means: the HTTP error handler, the socket
 * event guard and the handshake all answer through it, and none of them needs to know which
 * package (postgres.js, ioredis, the writer) threw.
 */

/** Any thrown value → the protocol error the client should see. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (isDatabaseUnavailable(error) || isRedisUnavailable(error) || error instanceof BatchStalledError) {
    return new AppError('UNAVAILABLE');
  }
  return new AppError('INTERNAL');
}

/**
 * Postgres unreachable, overloaded or timed out: counted as chat_postgres_errors_total. A call
 * of the general pool that stalled (DatabaseStalledError, Postgres gone without a reset) or
 * waited past its bound behind a busy pool (DatabaseBusyError) is one.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  return isPostgresUnavailable(error);
}

function isRedisUnavailable(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  return /Connection is closed|Stream isn't writeable|max retries per request|ECONNREFUSED/i.test(message);
}
