import { describe, expect } from 'vitest';
import { ERRORS } from '@chat/protocol';
import { connect, connectError, makeUser } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * [ext] HANDSHAKE_RATE_LIMIT_PER_MINUTE: a user's socket handshakes per minute, counted in Redis
 * for all pods. Each handshake costs a database lookup, and each time the user comes online a
 * presence announcement to every one of their rooms: a client reconnecting in a loop (a bug, or
 * a script) would otherwise make a pod pay both as fast as it can loop.
 */
const LIMIT = 6;
const it = clusterTest({ pods: 2, env: { HANDSHAKE_RATE_LIMIT_PER_MINUTE: String(LIMIT) } });

describe('handshakes per user, across the cluster [ext]', () => {
  it('refuses a user past the budget on every pod with TOO_MANY_REQUESTS and retryAfterMs; others connect', async ({ cluster }) => {
    const [a, b] = cluster.pods;
    const looping = await makeUser('재접속');
    // Alternating pods: one budget for both.
    for (let i = 0; i < LIMIT; i++) {
      const socket = await connect((i % 2 ? b : a)!.url, looping.token);
      expect(socket.connected, `handshake #${i + 1}`).toBe(true);
      socket.close();
    }
    for (const pod of [a, b]) {
      const refusal = (await connectError(pod!.url, { auth: { token: looping.token } })) as Error & { data?: { code?: string; retryAfterMs?: number } };
      expect(refusal.message).toBe(ERRORS.TOO_MANY_REQUESTS.message);
      expect(refusal.data?.code).toBe('TOO_MANY_REQUESTS');
      expect(refusal.data?.retryAfterMs).toBeGreaterThan(0);
      expect(refusal.data?.retryAfterMs).toBeLessThanOrEqual(60_000);
    }
    // Another user is not affected.
    const other = await connect(b!.url, (await makeUser('다른사람')).token);
    expect(other.connected).toBe(true);
    other.close();
  });
});
