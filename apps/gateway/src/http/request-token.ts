import type { FastifyRequest } from 'fastify';
import { stripBearer, type TokenVerifier, type VerifiedToken } from '@chat/auth';

/**
 * A request's bearer token, verified at most once however many hooks ask: the rate limiter
 * (whose budget) and the route's authentication (which user) both need it, and the signature
 * check is the costly part. The limiter (`onRequest`) asks first and the route (`preParsing`)
 * reuses its answer. The verification is remembered per request object only, never across
 * requests, so a token that has expired since the last request fails this one.
 */
export function createRequestTokens(verify: TokenVerifier) {
  // The promise, not its result: both hooks share one check even while it is still running,
  // and a rejection (INVALID_TOKEN, TOKEN_EXPIRED) reaches each of them.
  const verifications = new WeakMap<FastifyRequest, Promise<VerifiedToken>>();

  return {
    /** `null` when the request carries no bearer token. */
    verifiedTokenOf(request: FastifyRequest): Promise<VerifiedToken> | null {
      const remembered = verifications.get(request);
      if (remembered) return remembered;
      const token = stripBearer(request.headers.authorization);
      if (!token) return null;
      // Async so that a verifier that throws instead of rejecting still gives a promise.
      const verification = (async () => verify(token))();
      verifications.set(request, verification);
      return verification;
    },
  };
}

export type RequestTokens = ReturnType<typeof createRequestTokens>;
