import type { TokenVerifier, VerifiedToken } from '@chat/auth';
import type { SessionRequest, SessionRoom, SessionUser } from '@chat/db';
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
export function createUserAuthService(deps: {
  verify: TokenVerifier;
  /**
   * The stored user (stored or renamed from the token's nickname, nothing written when it is
   * unchanged) and their live rooms; null: no such user. Batched by the caller's wiring: the
   * handshakes of a reconnect storm share one query per loop turn.
   */
  openSession(request: SessionRequest): Promise<SessionUser | null>;
  /** The pod's room cache, handed the rooms the session read (RoomCache.seed). */
  knownRooms: { generation(): number; seed(rooms: readonly SessionRoom[], generation: number): void };
}) {
  const toAuthenticated = (verified: VerifiedToken, nickname: string): AuthenticatedUser => ({
    id: verified.userId,
    nickname,
    nicknameMask: nicknameMask(nickname),
    tokenExpiresAtMs: verified.expiresAt * 1000,
  });

  async function connect(verified: VerifiedToken): Promise<{ user: AuthenticatedUser; roomIds: string[] }> {
    const generation = deps.knownRooms.generation();
    const session = await deps.openSession({ id: verified.userId, nickname: verified.nickname, rooms: true });
    if (!session) throw new AppError('INVALID_TOKEN');
    // The socket's first event in each of its rooms then needs no lookup on this pod: a pod that
    // starts (or takes over a dead pod's clients) otherwise queries every busy room once.
    deps.knownRooms.seed(session.rooms, generation);
    return { user: toAuthenticated(verified, verified.nickname ?? session.nickname), roomIds: session.rooms.map((room) => room.id) };
  }

  /** REST: the same statement as a socket's handshake (one rule for storing the nickname), without the rooms. */
  async function authenticateVerified(verified: VerifiedToken): Promise<AuthenticatedUser> {
    const session = await deps.openSession({ id: verified.userId, nickname: verified.nickname, rooms: false });
    if (!session) throw new AppError('INVALID_TOKEN');
    return toAuthenticated(verified, verified.nickname ?? session.nickname);
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
    /**
     * For a socket's handshake, after `verify`: the user (stored or renamed as for REST) and the
     * rooms the socket is to be put in. The nickname is this token's when it names one (two
     * devices connecting at once with different names each see their own; the last is stored).
     */
    connect,
  };
}

export type UserAuthService = ReturnType<typeof createUserAuthService>;
