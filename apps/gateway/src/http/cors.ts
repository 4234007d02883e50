import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import { isUserApiRequest } from './user-api-paths.ts';

/** How long a browser may keep a preflight's answer (per URL and method). */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * The users' REST routes for pages served from another origin (PROTOCOL §13): the origins of
 * CORS_ORIGINS may call them, as they may open the socket. Tokens travel in `Authorization`,
 * never in cookies, so no credentials mode. Not the server API: it is for backends holding API
 * keys, which a browser must never hold. Any other origin, and a request without `Origin`, gets
 * no CORS headers and its preflight the usual 404, as with CORS_ORIGINS empty. A preflight is
 * answered in the plugin's onRequest hook, before the rate limit's route hook: it spends no
 * budget (a page sends one per URL it calls with a token, history cursors included).
 */
export async function registerCors(app: FastifyInstance, allowedOrigins: readonly string[]): Promise<void> {
  if (allowedOrigins.length === 0) return;
  const any = allowedOrigins.includes('*');
  const allowed = new Set(allowedOrigins);
  await app.register(cors, {
    delegator: (request, callback) => {
      const origin = request.headers.origin;
      const open = origin !== undefined && (any || allowed.has(origin)) && isUserApiRequest(request);
      callback(null, {
        // The request's own origin, echoed (with `Vary: Origin`), or no CORS at all.
        origin: open ? origin : false,
        methods: ['GET', 'HEAD', 'POST', 'DELETE'],
        allowedHeaders: ['Authorization', 'Content-Type'],
        // What a page needs to honour a 429 (PROTOCOL §13) and to see its budget.
        exposedHeaders: ['Retry-After', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset'],
        maxAge: PREFLIGHT_MAX_AGE_SECONDS,
        // A preflight without Access-Control-Request-Method is answered like one with it, not
        // with the plugin's plain-text 400 outside the error catalog.
        strictPreflight: false,
      });
    },
  });
}
