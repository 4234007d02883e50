import type { TokenVerifier, VerifiedToken } from '@chat/auth';
import type { UsersRepository } from '@chat/db';
import { AppError, nicknameMask } from '@chat/protocol';

export interface AuthenticatedUser {
  id: string;
  nickname: string;
  nicknameMask: string;
  /** The token's `exp`, in milliseconds since the epoch. */
  tokenExpiresAtMs: number;
}

/**
 * Token → user, for the socket handshake and REST alike. A token's `nickname` updates the
 * stored user; a token without one is accepted only for a user already stored.
 */
export function createUserAuthService(deps: { verify: TokenVerifier; users: UsersRepository }) {
  async function authenticateVerified(verified: VerifiedToken): Promise<AuthenticatedUser> {
    const user = verified.nickname
      ? await deps.users.upsert(verified.userId, verified.nickname)
      : await deps.users.find(verified.userId);
    if (!user) throw new AppError('INVALID_TOKEN');
    return {
      id: user.id,
      nickname: user.nickname,
      nicknameMask: nicknameMask(user.nickname),
      tokenExpiresAtMs: verified.expiresAt * 1000,
    };
  }

  return {
    async authenticate(token: string): Promise<AuthenticatedUser> {
      return authenticateVerified(await deps.verify(token));
    },
    /** The signature and claims only: no database (the handshake reserves a socket place between). */
    verify: (token: string): Promise<VerifiedToken> => deps.verify(token),
    /**
     * For a token already verified (REST shares one verification between the rate limiter and
     * the route): pass only a `TokenVerifier`'s result, as the claims are trusted as given.
     */
    authenticateVerified,
  };
}

export type UserAuthService = ReturnType<typeof createUserAuthService>;
