import type { FastifyRequest } from 'fastify';
import { AppError } from '@chat/protocol';
import type { AuthenticatedUser, UserAuthService } from '../services/user-auth.service.ts';
import type { RequestTokens } from './request-token.ts';

/**
 * REST authentication: `Authorization: Bearer <token>`; every failure is 401 `인증이 필요합니다`.
 * Routes run these hooks on `preParsing`: after the rate limit (an `onRequest` hook), so a
 * client past its budget costs no signature check or user lookup, and made-up tokens sent to
 * an authenticated route are limited too; and before the body is read and validated, so an
 * anonymous client learns first that it must authenticate. Handlers read the result with
 * `userOf`. The signature is checked through `tokens`, whose one verification per request the
 * rate limiter shares.
 */
export function createRequestAuth(auth: UserAuthService, tokens: RequestTokens) {
  const users = new WeakMap<FastifyRequest, AuthenticatedUser>();

  async function authenticate(request: FastifyRequest): Promise<AuthenticatedUser | null> {
    if (request.headers.authorization === undefined) return null;
    const verification = tokens.verifiedTokenOf(request);
    // A header without a token (`Bearer `) is a failed attempt, not a guest.
    if (!verification) throw new AppError('UNAUTHORIZED');
    try {
      return await auth.authenticateVerified(await verification);
    } catch (error) {
      if (error instanceof AppError) throw new AppError('UNAUTHORIZED');
      throw error;
    }
  }

  return {
    /** Guests pass; a token that is present must be valid. */
    async optionalUser(request: FastifyRequest): Promise<void> {
      const user = await authenticate(request);
      if (user) users.set(request, user);
    },

    async requireUser(request: FastifyRequest): Promise<void> {
      const user = await authenticate(request);
      if (!user) throw new AppError('UNAUTHORIZED');
      users.set(request, user);
    },

    /** The user an `optionalUser` hook authenticated for this request; null for a guest. */
    userOrGuestOf(request: FastifyRequest): AuthenticatedUser | null {
      return users.get(request) ?? null;
    },

    /** The user a `requireUser` hook authenticated for this request. */
    userOf(request: FastifyRequest): AuthenticatedUser {
      const user = users.get(request);
      if (!user) throw new AppError('UNAUTHORIZED');
      return user;
    },
  };
}

export type RequestAuth = ReturnType<typeof createRequestAuth>;
