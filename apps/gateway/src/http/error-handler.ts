import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
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
export function registerErrorHandling(app: FastifyInstance, pathErrors: PathErrors): void {
  // Before any route is added, so that every route with an id in its path is known to it.
  app.addHook('onRoute', pathErrors.learnRoute);
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

/**
 * What a route answers for an id in its path that is not a UUID (PROTOCOL §7, §8, §17), for the
 * ids the router itself cannot hand to the route. [ext] A server API `userId` that is not a UUID
 * is INVALID_REQUEST, as that route answers it.
 */
const NOT_A_UUID: Readonly<Record<string, ErrorCode>> = {
  roomId: 'ROOM_NOT_FOUND',
  messageId: 'MESSAGE_NOT_FOUND',
  userId: 'INVALID_REQUEST',
};

interface RouteShape {
  methods: readonly string[];
  /** The path's segments: a literal, or `{ param }` for `:param`. */
  segments: readonly (string | { param: string })[];
}

export interface PathErrors {
  /** For Fastify's `frameworkErrors`: the router's own errors, answered from the catalog. */
  frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void;
  /** The `onRoute` hook that tells it the routes with ids in their path. */
  learnRoute(route: RouteOptions): void;
}

/** The segment decoded, or null when it is not valid percent-encoding. */
function decodeSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/**
 * The router's errors (Fastify's `frameworkErrors`) in the one body of the catalog, never
 * Fastify's own (`FST_ERR_BAD_URL` 400, `FST_ERR_MAX_PARAM_LENGTH` 414), which echo the URL.
 * A path that is not valid percent-encoding (`%ZZ`, a cut UTF-8 sequence) reaches no route:
 * when it has the shape of a route whose id is the malformed segment, the answer is that
 * route's "not found" for an id that is not a UUID (NOT_A_UUID); otherwise 400 INVALID_REQUEST.
 * These are answered by the router, so before the route's authentication and the rate limit;
 * the answer depends on the URL's spelling alone. `maxParamLength` is the longest parameter
 * the router takes: a longer one is answered as a malformed one.
 */
export function createPathErrors(maxParamLength: number): PathErrors {
  const routes: RouteShape[] = [];

  function faultOf(method: string, path: string): ErrorCode | null {
    const raw = path.split('/');
    for (const route of routes) {
      if (!route.methods.includes(method) || route.segments.length !== raw.length) continue;
      let fault: ErrorCode | null = null;
      const matches = route.segments.every((segment, index) => {
        const decoded = decodeSegment(raw[index]!);
        if (typeof segment === 'string') return decoded === segment;
        if (fault === null && (decoded === null || decoded.length > maxParamLength)) fault = NOT_A_UUID[segment.param] ?? 'INVALID_REQUEST';
        return true;
      });
      if (matches && fault !== null) return fault;
    }
    return null;
  }

  return {
    learnRoute(route) {
      if (!route.url.includes(':')) return;
      routes.push({
        methods: [route.method].flat(),
        segments: route.url.split('/').map((segment) => (segment.startsWith(':') ? { param: segment.slice(1) } : segment)),
      });
    },

    frameworkErrors(error, request, reply) {
      const status = error.statusCode ?? 500;
      if (status >= 500) {
        request.log.error({ err: error }, 'request failed');
        void reply.status(500).send(body('INTERNAL'));
        return;
      }
      const url = request.raw.url ?? '';
      const pathEnd = url.search(/[?#]/);
      const method = request.raw.method === 'HEAD' ? 'GET' : (request.raw.method ?? '');
      const code = faultOf(method, pathEnd === -1 ? url : url.slice(0, pathEnd)) ?? 'INVALID_REQUEST';
      void reply.status(ERRORS[code].status).send(body(code));
    },
  };
}
