import { createHmac } from 'node:crypto';

const base64url = (value: string | Buffer) => Buffer.from(value).toString('base64url');

/**
 * A JWT built by hand, for hostile handshakes: any header (`alg: none`, `HS512`), any claims
 * (no `exp`, a non-UUID `sub`), signed with HMAC when the header's alg asks for one and a
 * secret is given, otherwise with an empty signature.
 */
export function rawJwt(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  secret?: string,
): string {
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const hmac = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[String(header.alg)];
  const signature =
    hmac && secret !== undefined ? createHmac(hmac, secret).update(signingInput).digest('base64url') : '';
  return `${signingInput}.${signature}`;
}

/** Seconds since the epoch, as JWT time claims count. */
export const nowSeconds = () => Math.floor(Date.now() / 1000);
