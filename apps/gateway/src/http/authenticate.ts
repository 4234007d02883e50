import type { FastifyRequest } from 'fastify';
import { stripBearer } from '@chat/auth';
import { AppError } from '@chat/protocol';
import type { AuthenticatedUser, UserAuthService } from '../services/user-auth.service.ts';

/** REST authentication: `Authorization: Bearer <token>`; every failure is 401 `인증이 필요합니다`. */
export function createRequestAuth(auth: UserAuthService) {
  async function optionalUser(request: FastifyRequest): Promise<AuthenticatedUser | null> {
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

  async function requireUser(request: FastifyRequest): Promise<AuthenticatedUser> {
    const user = await optionalUser(request);
    if (!user) throw new AppError('UNAUTHORIZED');
    return user;
  }

  return { optionalUser, requireUser };
}

export type RequestAuth = ReturnType<typeof createRequestAuth>;
