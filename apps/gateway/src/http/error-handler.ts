import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError, ERRORS, isErrorCode, type ErrorCode } from '@chat/protocol';
import { toAppError } from '../errors/error-classification.ts';

function body(code: ErrorCode) {
  const { status, message } = ERRORS[code];
  return { statusCode: status, error: STATUS_CODES[status] ?? 'Error', message, code };
}

function isClientError(status: number | undefined): status is number {
  return typeof status === 'number' && status >= 400 && status < 500;
}

function fromValidation(firstIssueMessage: string | undefined): AppError {
  return new AppError(isErrorCode(firstIssueMessage) ? firstIssueMessage : 'INVALID_REQUEST');
}

/**
 * The one place an error becomes an HTTP answer `{ statusCode, error, message, code }`.
 * Schema failures carry an error code as their issue message (see packages/protocol/src/http.ts).
 */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (!(error instanceof AppError) && !error.validation && isClientError(error.statusCode)) {
      // Fastify's own client errors (malformed JSON, body too large, wrong media type) keep
      // their status; the body still has the one shape.
      const status = error.statusCode;
      return reply.status(status).send({ ...body('INVALID_REQUEST'), statusCode: status, error: STATUS_CODES[status] ?? 'Error' });
    }
    const appError = error.validation ? fromValidation(error.validation[0]?.message) : toAppError(error);
    if (appError.status >= 500) request.log.error({ err: error }, 'request failed');
    const retryAfterMs = appError.details?.retryAfterMs;
    if (typeof retryAfterMs === 'number') reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
    return reply.status(appError.status).send(body(appError.code));
  });

  app.setNotFoundHandler((_request, reply) => reply.status(404).send(body('NOT_FOUND')));
}
