import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { StateClient } from '@chat/bus';
import { AppError } from '@chat/protocol';
import { clientAddressKey } from './address-key.ts';
import { redisStoreWithLocalFallback } from './rate-limit-store.ts';
import type { RequestTokens } from './request-token.ts';
import { isUserApiRequest } from './user-api-paths.ts';

/**
 * Whose budget a request spends: a request with a valid token spends its user's (users behind
 * one NAT do not share), any other its client address's (an IPv6 client's whole /64:
 * address-key.ts). The token is verified here (the signature only: no database), so made-up
 * tokens cannot each buy a fresh budget; through `tokens`, one verification serves both this
 * key and the route's authentication.
 */
function budgetKeyOf(tokens: RequestTokens) {
  return async (request: FastifyRequest): Promise<string> => {
    const verification = tokens.verifiedTokenOf(request);
    if (verification) {
      try {
        return `u:${(await verification).userId}`;
      } catch {
        // Invalid or expired: the route answers 401, on the address's budget.
      }
    }
    return `a:${clientAddressKey(request.ip)}`;
  };
}

/**
 * `/api/*` requests per minute per user (or per client address for guests, as the trusted
 * proxy reports it: an IPv4 address, or an IPv6 /64), counted in Redis so every pod shares one
 * budget. Over the budget: 429 `TOO_MANY_REQUESTS` with `Retry-After`. When Redis cannot
 * answer, each pod counts the same budget by itself (rate-limit-store.ts) rather than refuse
 * everyone or limit no one.
 */
export async function registerHttpRateLimit(
  app: FastifyInstance,
  options: { redis: StateClient; keyPrefix: string; perMinute: number; tokens: RequestTokens },
): Promise<void> {
  if (options.perMinute <= 0) return;
  await app.register(rateLimit, {
    global: true,
    max: options.perMinute,
    timeWindow: 60_000,
    store: redisStoreWithLocalFallback(options.redis, `${options.keyPrefix}:http-rate:`, app.log),
    // The store answers from memory when Redis does not; anything else failing serves the request.
    skipOnError: true,
    // Only the users' API: probes, `/metrics`, the docs and the web page's files must answer
    // exactly when traffic is heavy (issue 5). The server API (`/api/server/`) has its own
    // budget per API key (server-api-auth.ts): a backend must not spend its address's user budget.
    allowList: (request) => !isUserApiRequest(request),
    keyGenerator: budgetKeyOf(options.tokens),
    errorResponseBuilder: () => new AppError('TOO_MANY_REQUESTS'),
  });
}
