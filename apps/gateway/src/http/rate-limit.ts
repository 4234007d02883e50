import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { AppError } from '@chat/protocol';

/**
 * Only the API is limited: probes, `/metrics`, the docs and the web page's files must answer
 * exactly when traffic is heavy (issue 5).
 */
const isLimited = (url: string) => url.startsWith('/api/');

/**
 * Whose budget a request spends: a request with a token spends its token's (users behind one
 * NAT do not share), a guest its address's. The token is not verified here (the route does
 * that, and a made-up token only buys a 401); it is hashed, so no token is ever stored.
 */
function budgetKey(request: FastifyRequest): string {
  const authorization = request.headers.authorization;
  if (authorization) return `t:${createHash('sha256').update(authorization).digest('base64url').slice(0, 22)}`;
  return `a:${request.ip}`;
}

/**
 * `/api/*` requests per minute per token (or per client address for guests, as the trusted
 * proxy reports it), counted in Redis so every pod shares one budget. Over the budget: 429
 * `TOO_MANY_REQUESTS` with `Retry-After`. When Redis cannot answer, requests are served rather
 * than all refused.
 */
export async function registerHttpRateLimit(
  app: FastifyInstance,
  options: { redis: Redis; keyPrefix: string; perMinute: number },
): Promise<void> {
  if (options.perMinute <= 0) return;
  await app.register(rateLimit, {
    global: true,
    max: options.perMinute,
    timeWindow: 60_000,
    redis: options.redis,
    nameSpace: `${options.keyPrefix}:http-rate:`,
    skipOnError: true,
    allowList: (request) => !isLimited(request.url),
    keyGenerator: budgetKey,
    errorResponseBuilder: () => new AppError('TOO_MANY_REQUESTS'),
  });
}
