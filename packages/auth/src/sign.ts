import { SignJWT } from 'jose';

export interface SignOptions {
  secret: string;
  userId: string;
  nickname?: string;
  expiresInSeconds?: number;
  issuer?: string;
  audience?: string;
  notBefore?: number;
}

/** HS256 tokens for the development login, the tests and the load generator. */
export async function signToken(options: SignOptions): Promise<{ token: string; expiresAt: number }> {
  const now = Math.floor(Date.now() / 1000);
  const expiresAt = now + (options.expiresInSeconds ?? 3600);
  let jwt = new SignJWT(options.nickname === undefined ? {} : { nickname: options.nickname })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.userId)
    .setIssuedAt(now)
    .setExpirationTime(expiresAt);
  if (options.issuer) jwt = jwt.setIssuer(options.issuer);
  if (options.audience) jwt = jwt.setAudience(options.audience);
  if (options.notBefore !== undefined) jwt = jwt.setNotBefore(options.notBefore);
  const token = await jwt.sign(new TextEncoder().encode(options.secret));
  return { token, expiresAt };
}
