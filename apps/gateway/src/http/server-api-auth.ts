import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '@chat/protocol';
import type { UserRateLimiter } from '../infrastructure/user-rate-limiter.ts';
import { clientAddressKey } from './address-key.ts';

export interface ServerApiKeys {
  /** Each key's id and the SHA-256 (hex) of the key. */
  keys: readonly { id: string; sha256: string }[];
  revokedKeyIds: readonly string[];
}

/** The header a backend sends its key in; never `Authorization`, which carries user JWTs. */
export const API_KEY_HEADER = 'x-api-key';

/**
 * Authentication of the server API (PROTOCOL §17): `X-Api-Key: <key>`, compared by its SHA-256
 * against the configured hashes (constant time per entry), then the key's own rate limit.
 * Missing → API_KEY_REQUIRED, unknown → INVALID_API_KEY, revoked → API_KEY_REVOKED, all 401,
 * within a budget of refusals per client address (then 429).
 * Every call is logged once it is answered, with the key's id (never the key) and the status.
 */
export function createServerApiAuth(
  options: ServerApiKeys & {
    limiter: UserRateLimiter;
    /**
     * Refused calls (no key, an unknown or a revoked one) per client address: they spend no key's
     * budget, and the user routes' limit leaves `/api/server/` out, so they were not limited at
     * all. Null: not limited (HTTP_RATE_LIMIT_PER_MINUTE=0).
     */
    refusalLimiter: UserRateLimiter | null;
  },
) {
  const configured = options.keys.map((key) => ({ id: key.id, digest: Buffer.from(key.sha256, 'hex') }));
  const revoked = new Set(options.revokedKeyIds);
  const keyIds = new WeakMap<FastifyRequest, string>();

  function identify(presented: string): string | null {
    const digest = createHash('sha256').update(presented, 'utf8').digest();
    let found: string | null = null;
    // No early exit: every entry is compared, so timing does not tell which one matched.
    for (const key of configured) if (timingSafeEqual(digest, key.digest)) found = key.id;
    return found;
  }

  /** Past the address's budget of refusals: 429 TOO_MANY_REQUESTS with Retry-After instead of the 401. */
  async function refuse(request: FastifyRequest, code: 'API_KEY_REQUIRED' | 'INVALID_API_KEY' | 'API_KEY_REVOKED'): Promise<never> {
    await options.refusalLimiter?.consume(clientAddressKey(request.ip));
    throw new AppError(code);
  }

  return {
    /** A `preParsing` hook: before the body is read, as the user routes authenticate. */
    async requireKey(request: FastifyRequest): Promise<void> {
      const header = request.headers[API_KEY_HEADER];
      const presented = Array.isArray(header) ? header[0] : header;
      if (presented === undefined || presented.trim() === '') return refuse(request, 'API_KEY_REQUIRED');
      const keyId = identify(presented.trim());
      if (keyId === null) return refuse(request, 'INVALID_API_KEY');
      keyIds.set(request, keyId);
      if (revoked.has(keyId)) return refuse(request, 'API_KEY_REVOKED');
      await options.limiter.consume(keyId);
    },

    /** The key id `requireKey` found for this request. */
    keyIdOf(request: FastifyRequest): string {
      const keyId = keyIds.get(request);
      if (keyId === undefined) throw new AppError('INVALID_API_KEY');
      return keyId;
    },

    /** An `onResponse` hook: the audit line of every call, refused ones included. */
    async logCall(request: FastifyRequest, reply: FastifyReply): Promise<void> {
      request.log.info(
        {
          apiKeyId: keyIds.get(request) ?? null,
          method: request.method,
          route: request.routeOptions.url,
          statusCode: reply.statusCode,
        },
        'server api call',
      );
    },
  };
}

export type ServerApiAuth = ReturnType<typeof createServerApiAuth>;
