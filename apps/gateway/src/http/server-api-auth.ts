import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '@chat/protocol';
import type { UserRateLimiter } from '../infrastructure/user-rate-limiter.ts';

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
 * Missing → API_KEY_REQUIRED, unknown → INVALID_API_KEY, revoked → API_KEY_REVOKED, all 401.
 * Every call is logged once it is answered, with the key's id (never the key) and the status.
 */
export function createServerApiAuth(options: ServerApiKeys & { limiter: UserRateLimiter }) {
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

  return {
    /** A `preParsing` hook: before the body is read, as the user routes authenticate. */
    async requireKey(request: FastifyRequest): Promise<void> {
      const header = request.headers[API_KEY_HEADER];
      const presented = Array.isArray(header) ? header[0] : header;
      if (presented === undefined || presented.trim() === '') throw new AppError('API_KEY_REQUIRED');
      const keyId = identify(presented.trim());
      if (keyId === null) throw new AppError('INVALID_API_KEY');
      keyIds.set(request, keyId);
      if (revoked.has(keyId)) throw new AppError('API_KEY_REVOKED');
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
