import type { FastifyRequest } from 'fastify';
import { stripBearer } from '@chat/auth';
import { AppError } from '@chat/protocol';
import type { AuthenticatedUser, UserAuthService } from '../services/user-auth.service.ts';

/**
 * REST authentication: `Authorization: Bearer <token>`; every failure is 401 `인증이 필요합니다`.
 * The hooks run on `onRequest`, before body and query validation, so an anonymous client learns
 * first that it must authenticate; handlers read the result with `userOf`.
 */
export function createRequestAuth(auth: UserAuthService) {
  const users = new WeakMap<FastifyRequest, AuthenticatedUser>();

  async function authenticate(request: FastifyRequest): Promise<AuthenticatedUser | null> {
    const header = request.headers.authorization;
    if (header === undefined) return null;
    const token = stripBearer(header);
    if (!token) throw new AppError('UNAUTHORIZED');
    try {
      return await auth.authenticate(token);
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

    /** The user a `requireUser` hook authenticated for this request. */
    userOf(request: FastifyRequest): AuthenticatedUser {
      const user = users.get(request);
      if (!user) throw new AppError('UNAUTHORIZED');
      return user;
    },
  };
}

export type RequestAuth = ReturnType<typeof createRequestAuth>;
