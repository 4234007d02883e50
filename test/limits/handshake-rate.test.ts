import { io } from 'socket.io-client';
import { describe, expect } from 'vitest';
import { CHAT_NAMESPACE } from '@chat/protocol';
import { connect, makeUser, type TestSocket, type TestUser } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * [ext] HANDSHAKE_RATE_LIMIT_PER_MINUTE: a user's socket handshakes per minute, counted in Redis
 * for all pods. Each handshake costs a database lookup, and each time the user comes online a
 * presence announcement to every one of their rooms: a client reconnecting in a loop (a bug, or
 * a script) would otherwise make a pod pay both as fast as it can loop.
 */
const LIMIT = 6;
const it = clusterTest({ pods: 2, env: { HANDSHAKE_RATE_LIMIT_PER_MINUTE: String(LIMIT) } });

type Refusal = { message: string; code: string | undefined; retryAfterMs: number | undefined };

/** One handshake: closed again once accepted (true), or its refusal. */
function handshake(url: string, user: TestUser): Promise<true | Refusal> {
  const socket: TestSocket = io(`${url}${CHAT_NAMESPACE}`, { transports: ['websocket'], auth: { token: user.token }, reconnection: false, forceNew: true });
  return new Promise((resolve) => {
    socket.once('connect', () => {
      socket.close();
      resolve(true);
    });
    socket.once('connect_error', (error: Error & { data?: { code?: string; retryAfterMs?: number } }) => {
      socket.close();
      resolve({ message: error.message, code: error.data?.code, retryAfterMs: error.data?.retryAfterMs });
    });
  });
}

describe('handshakes per user, across the cluster [ext]', () => {
  it('refuses a user past the budget on every pod with TOO_MANY_REQUESTS and retryAfterMs; others connect', async ({ cluster }) => {
    const [a, b] = cluster.pods;
    const looping = await makeUser('재접속');
    // Alternating pods: one budget for both.
    for (let i = 0; i < LIMIT; i++) expect(await handshake((i % 2 ? b : a)!.url, looping), `handshake #${i + 1}`).toBe(true);
    for (const pod of [a, b]) {
      const refusal = await handshake(pod!.url, looping);
      expect(refusal).toMatchObject({ message: '요청이 너무 많습니다. 잠시 후 다시 시도해주세요', code: 'TOO_MANY_REQUESTS' });
      const { retryAfterMs } = refusal as Refusal;
      expect(retryAfterMs).toBeGreaterThan(0);
      expect(retryAfterMs).toBeLessThanOrEqual(60_000);
    }
    // Another user is not affected.
    const other = await connect(b!.url, (await makeUser('다른사람')).token);
    expect(other.connected).toBe(true);
    other.close();
  });
});
