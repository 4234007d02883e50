import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError, ERRORS, isErrorCode, type ErrorCode } from '@chat/protocol';
import { toAppError } from '../realtime/respond.ts';

function body(code: ErrorCode) {
  const { status, message } = ERRORS[code];
  return { statusCode: status, error: STATUS_CODES[status] ?? 'Error', message, code };
}

/**
 * The one place an error becomes an HTTP answer `{ statusCode, error, message, code }`.
 * Schema failures carry an error code as their issue message (see packages/protocol/http.ts).
 */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    let appError: AppError;
    if (error instanceof AppError) {
      appError = error;
    } else if (error.validation) {
      const first = error.validation[0]?.message;
      appError = new AppError(isErrorCode(first) ? first : 'INVALID_REQUEST');
    } else if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      // Fastify's own client errors (bad JSON, body too large, unsupported media type).
      appError = new AppError('INVALID_REQUEST');
      const payload = body('INVALID_REQUEST');
      return reply.status(error.statusCode).send({ ...payload, statusCode: error.statusCode, error: STATUS_CODES[error.statusCode] ?? 'Error' });
    } else {
      appError = toAppError(error);
    }
    if (appError.status >= 500) request.log.error({ err: error }, 'request failed');
    return reply.status(appError.status).send(body(appError.code));
  });

  app.setNotFoundHandler((_request, reply) => reply.status(404).send(body('NOT_FOUND')));
}
