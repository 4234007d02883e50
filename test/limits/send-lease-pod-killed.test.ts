import { Redis } from 'ioredis';
import { describe, expect } from 'vitest';
import { connect, createRoom, emitAck, makeUser, spawnGateway } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * PROTOCOL §4: the send budget (30 a minute per user) is leased from Redis a few units at a time
 * (infrastructure/leased-rate-limiter.ts). A real gateway process holding spare units of a user
 * is killed (SIGKILL: nothing given back); the user goes on on another pod. Verified: the limit
 * is never exceeded (what the dead pod held counts as spent, nothing is handed out twice), the
 * refusals on the live pod say to retry no later than the end of the user's window, and at that
 * moment a whole new budget starts: the user is locked out no longer than the window.
 */
const it = clusterTest({ pods: 1 });

const LIMIT = 30;
const LEASE_MS = 1000;

type Ack = { ok: boolean; error?: { code: string; retryAfterMs?: number } };

describe('send units held by a pod that is killed', () => {
  it('stay spent until the user\'s window ends, never spent twice; then a new budget starts', { timeout: 60_000 }, async ({ cluster, sql }) => {
    const [live] = cluster.pods;
    const doomed = await spawnGateway(cluster, { MESSAGE_RATE_LEASE_MS: String(LEASE_MS), POD_NAME: 'doomed' });
    const user = await makeUser('발신자');
    const { roomId } = await createRoom(live!.url, user);
    const send = async (socket: Awaited<ReturnType<typeof connect>>, content: string) =>
      (await emitAck(socket, 'send-message', { roomId, type: 'text', content })) as Ack;

    const onDoomed = await connect(doomed.url, user.token);
    expect((await emitAck(onDoomed, 'join-room', { roomId })).ok).toBe(true);
    // Quick sends: the doomed pod leases spare units ahead of them.
    let sentOnDoomed = 0;
    for (; sentOnDoomed < 12; sentOnDoomed++) expect((await send(onDoomed, `doomed ${sentOnDoomed}`)).ok).toBe(true);
    const redis = new Redis(cluster.redisUrl, { maxRetriesPerRequest: 1 });
    try {
      const key = `${cluster.redisPrefix}:rl:send-lease:${user.userId}`;
      const taken = Number(await redis.hget(key, 'n'));
      // The case in question: units taken from the window that no send spent, held by the pod.
      expect(taken).toBeGreaterThan(sentOnDoomed);
      const holders = Object.keys(await redis.hgetall(key)).filter((field) => field.startsWith('h:'));
      expect(holders).toHaveLength(1);

      await doomed.kill('SIGKILL');

      // On the live pod: exactly what the dead pod did not take, then refusals.
      const onLive = await connect(live!.url, user.token);
      let okOnLive = 0;
      let refusal: Ack | null = null;
      for (let index = 0; index < LIMIT && refusal === null; index++) {
        const ack = await send(onLive, `live ${index}`);
        if (ack.ok) okOnLive += 1;
        else refusal = ack;
      }
      expect(okOnLive).toBe(LIMIT - taken);
      expect(refusal?.error).toMatchObject({ code: 'RATE_LIMITED' });
      const [{ stored } = { stored: -1 }] = await sql<{ stored: number }[]>`
        select count(*)::int as stored from messages where user_id = ${user.userId}`;
      expect(stored).toBe(sentOnDoomed + okOnLive);
      expect(stored).toBeLessThanOrEqual(LIMIT);

      // The first refusal names when the dead pod's units were due back (its lease, at most);
      // they do not come back, and the retry then is refused until the window's end, which the
      // window's key in Redis bounds: no later than that, the user sends again.
      await new Promise((resolve) => setTimeout(resolve, refusal!.error!.retryAfterMs! + 50));
      const retry = await send(onLive, 'retry');
      expect(retry.error).toMatchObject({ code: 'RATE_LIMITED' });
      const windowLeftMs = await redis.pttl(key);
      expect(windowLeftMs).toBeGreaterThan(0);
      expect(retry.error!.retryAfterMs!).toBeLessThanOrEqual(windowLeftMs + 50);

      // The window's end is its key's expiry: brought forward (the rest of the minute is only
      // waiting), the user sends again as soon as it has passed, nothing else held back.
      await redis.pexpire(key, 500);
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect((await send(onLive, 'next window')).ok).toBe(true);
    } finally {
      redis.disconnect();
    }
  });
});
