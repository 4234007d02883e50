import { randomUUID } from 'node:crypto';
import { signHs256 } from '../bench/lib/jwt.ts';

/**
 * An error as one line for the terminal: fetch's own message is only "fetch failed", its cause
 * (ECONNREFUSED 127.0.0.1:3000, a DNS failure…) says what to fix. Messages here never hold a token.
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : null;
  return cause && !error.message.includes(cause) ? `${error.message} (${cause})` : error.message;
}

export async function withTimeout<T>(ms: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  return run(AbortSignal.timeout(ms));
}

/**
 * One token per simulated user: minted locally from JWT_SECRET (with JWT_ISSUER / JWT_AUDIENCE
 * when set), or asked from the token endpoint (default `<first url>/api/auth/token`, the
 * development login).
 */
export async function tokenSource(options: {
  urls: readonly string[];
  tokenEndpoint: string | null;
  validSeconds: number;
}): Promise<(nickname: string) => Promise<string>> {
  const secret = process.env.JWT_SECRET;
  if (secret && !options.tokenEndpoint) {
    const issuer = process.env.JWT_ISSUER;
    const audience = process.env.JWT_AUDIENCE;
    if (issuer || audience) {
      const { signToken } = await import('@chat/auth');
      return async (nickname) =>
        (await signToken({ secret, userId: randomUUID(), nickname, expiresInSeconds: options.validSeconds, ...(issuer ? { issuer } : {}), ...(audience ? { audience } : {}) })).token;
    }
    return async (nickname) => signHs256(secret, { sub: randomUUID(), nickname, expiresInSeconds: options.validSeconds });
  }
  const endpoint = options.tokenEndpoint ?? `${options.urls[0]}/api/auth/token`;
  return (nickname) =>
    withTimeout(10_000, async (signal) => {
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ nickname }),
        signal,
      });
      if (response.status === 429) {
        throw new Error('token endpoint answered 429: the target limits /api/* per address (HTTP_RATE_LIMIT_PER_MINUTE, default 600); mint tokens from JWT_SECRET, or raise or turn off (0) the limit on the target for the test');
      }
      if (!response.ok) throw new Error(`token endpoint answered ${response.status}`);
      const body = (await response.json()) as { accessToken?: unknown };
      if (typeof body.accessToken !== 'string') throw new Error('token endpoint returned no accessToken');
      return body.accessToken;
    });
}

/** `make(0 … count-1)` with at most `concurrency` in flight; results in index order. */
export async function pool<T>(count: number, concurrency: number, make: (index: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const index = next++;
        out[index] = await make(index);
      }
    }),
  );
  return out;
}
