import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { AppError, NICKNAME_MAX_CHARACTERS, isUuid, readName } from '@chat/protocol';

export interface VerifierOptions {
  /** HS256 shared secret; exactly one of `secret` and `jwksUrl`. */
  secret?: string;
  /** Asymmetric keys (RS256 / ES256 / EdDSA) fetched and cached from this JWKS URL. */
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  clockToleranceSeconds?: number;
  /**
   * Refuse tokens that live longer than this (JWT_MAX_LIFETIME_SECONDS): `exp − iat`, and
   * `exp − now` (a token without `iat`, or one whose `iat` is made up, gains nothing).
   */
  maxLifetimeSeconds?: number;
}

export interface VerifiedToken {
  userId: string;
  /** Absent when the token carries none: only acceptable for a user already stored. */
  nickname: string | null;
  /** Seconds since the epoch. */
  expiresAt: number;
}

export type TokenVerifier = (token: string) => Promise<VerifiedToken>;

const ASYMMETRIC_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];

/**
 * Builds the one verifier every entry point uses (socket handshake and REST). The algorithm is
 * pinned, `exp` and `sub` are required, and every throw — a `JOSEError` or anything else, such
 * as the `TypeError` jose raises for odd headers — becomes INVALID_TOKEN or TOKEN_EXPIRED.
 */
export function createTokenVerifier(options: VerifierOptions): TokenVerifier {
  const key: Uint8Array | JWTVerifyGetKey = options.jwksUrl
    ? createRemoteJWKSet(new URL(options.jwksUrl))
    : new TextEncoder().encode(requireSecret(options.secret));
  const algorithms = options.jwksUrl ? ASYMMETRIC_ALGORITHMS : ['HS256'];

  const tolerance = options.clockToleranceSeconds ?? 5;

  return async (token) => {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, key as Uint8Array, {
        algorithms,
        requiredClaims: ['exp', 'sub'],
        clockTolerance: tolerance,
        ...(options.issuer ? { issuer: options.issuer } : {}),
        ...(options.audience ? { audience: options.audience } : {}),
      }));
    } catch (error) {
      throw new AppError(error instanceof errors.JWTExpired ? 'TOKEN_EXPIRED' : 'INVALID_TOKEN');
    }
    const { sub, exp, iat, nickname } = payload;
    if (!isUuid(sub) || typeof exp !== 'number') throw new AppError('INVALID_TOKEN');
    if (options.maxLifetimeSeconds !== undefined && outlives(exp, iat, options.maxLifetimeSeconds, tolerance)) {
      throw new AppError('INVALID_TOKEN');
    }
    let name: string | null = null;
    if (nickname !== undefined) {
      // The same rule as every nickname (docs/PROTOCOL.md §11): control characters would reach
      // the users table (Postgres refuses U+0000 outright, a 500 at the handshake) and every
      // screen that shows the name, as would a bidi override or a name with nothing visible.
      name = readName(nickname, NICKNAME_MAX_CHARACTERS);
      if (name === null) throw new AppError('INVALID_TOKEN');
    }
    return { userId: sub.toLowerCase(), nickname: name, expiresAt: exp };
  };
}

/** Whether a token lives longer than `maxSeconds`, from its `iat` (not in the future) and from now. */
function outlives(exp: number, iat: unknown, maxSeconds: number, toleranceSeconds: number): boolean {
  const now = Date.now() / 1000;
  if (exp - now > maxSeconds + toleranceSeconds) return true;
  if (iat === undefined) return false;
  // jose has checked that `iat` is a number; one in the future would shorten `exp − iat`.
  if (typeof iat !== 'number' || iat > now + toleranceSeconds) return true;
  return exp - iat > maxSeconds;
}

function requireSecret(secret: string | undefined): string {
  if (!secret) throw new Error('createTokenVerifier needs a secret or a jwksUrl');
  return secret;
}

/** `Bearer abc` → `abc`; tolerant of case and surrounding spaces, as PROTOCOL §1 allows. */
export function stripBearer(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const trimmed = value.trim();
  const token = /^bearer\s+/i.test(trimmed) ? trimmed.replace(/^bearer\s+/i, '') : trimmed;
  return token.length > 0 ? token : null;
}
