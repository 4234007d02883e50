import type { FastifyInstance, FastifyRequest } from 'fastify';

/** A body of a media type the API does not read: 415, which the error handler answers in the one shape. */
function unsupportedMediaType(): Error & { statusCode: number } {
  return Object.assign(new Error('unsupported media type'), { statusCode: 415 });
}

/** True when the request says it carries no bytes (`Content-Length: 0`, not chunked). */
function declaresEmptyBody(request: FastifyRequest): boolean {
  return request.headers['content-length'] === '0' && request.headers['transfer-encoding'] === undefined;
}

/**
 * The bodies the API reads (PROTOCOL §13): JSON only. Two rules beyond Fastify's defaults:
 *
 * - An empty body is no body, whatever its `Content-Type`. Many HTTP clients send
 *   `Content-Type: application/json` on every request, a bodyless `DELETE /api/messages/:id`
 *   included; Fastify answered that 400 (an empty JSON body), so the author could not delete.
 *   A route that needs a body still answers its own error for the missing one (400).
 * - A body that is not `application/json` is 415. Fastify also reads `text/plain` (what `fetch`
 *   sends for a string body without a `Content-Type`), which reached the routes as a string and
 *   was answered 400 instead of the documented 415.
 *
 * JSON keeps Fastify's own parser, with its refusal of `__proto__` and `constructor.prototype`.
 */
export function registerBodyParsers(app: FastifyInstance): void {
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    // Always a string (parseAs), which the type of the callback does not know.
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text === '') {
      done(null, undefined);
      return;
    }
    json(request, text, done);
  });
  // Every other media type, and a body without one. The body is not read for a 415.
  app.addContentTypeParser('*', (request, _payload, done) => {
    if (declaresEmptyBody(request)) done(null, undefined);
    else done(unsupportedMediaType(), undefined);
  });
}
