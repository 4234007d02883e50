import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

/** Where `pnpm build:web` writes the chat page (apps/web/dist), seen from this source file. */
export const WEB_DIST = fileURLToPath(new URL('../../../web/dist/', import.meta.url));

/**
 * The page renders user content as text only; this is the second line of defence. Images of
 * messages may come from any http(s) URL; everything else only from this origin ('self' also
 * covers the page's own ws:// socket).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: http: https:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The chat page (apps/web) at `/`. Its catch-all `GET /*` only gets what no other route
 * takes: /api, /docs, /livez and /readyz are routes of their own (find-my-way prefers them),
 * /socket.io is answered by Socket.IO before Fastify sees it, and a path with no file behind
 * it falls through to the JSON 404 of the error handler. Files are looked up per request, so
 * a rebuild (`pnpm build:web`, or the browser test) takes effect without a restart. Without a
 * build at start, `/` answers a JSON 503 saying how to make one; the rest works as before.
 */
export function webRoutes(options: { root?: string } = {}): FastifyPluginAsync {
  const root = options.root ?? WEB_DIST;
  return async (app) => {
    if (!existsSync(path.join(root, 'index.html'))) {
      app.log.warn({ root }, 'chat page not built; `/` answers 503 until `pnpm build:web` and a restart');
      app.get('/', { schema: { hide: true } }, async (_request, reply) =>
        reply.status(503).send({
          statusCode: 503,
          error: 'Service Unavailable',
          message: 'The chat page is not built: run `pnpm build:web` and restart the gateway.',
          code: 'WEB_NOT_BUILT',
        }),
      );
      return;
    }
    await app.register(fastifyStatic, {
      root,
      prefix: '/',
      wildcard: true,
      index: ['index.html'],
      redirect: false,
      decorateReply: false,
      serveDotFiles: false,
      cacheControl: false,
      setHeaders(reply, filePath) {
        reply.header('x-content-type-options', 'nosniff');
        if (filePath.includes(`${path.sep}assets${path.sep}`)) {
          // Vite puts a content hash in every asset name.
          reply.header('cache-control', 'public, max-age=31536000, immutable');
        } else {
          reply.header('cache-control', 'no-cache');
        }
        if (filePath.endsWith('.html')) {
          reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
          reply.header('referrer-policy', 'no-referrer');
          reply.header('x-frame-options', 'DENY');
        }
      },
    });
  };
}
