import { afterEach, describe, expect, inject, it } from 'vitest';
import {
  closeAllSockets,
  connect,
  createRoom,
  emitAck,
  makeUser,
  request,
  sleep,
  startPrivateRedis,
  startTcpRelay,
} from '@chat/testing';
import { startCluster, type TestCluster } from '../support/index.ts';

/**
 * `/readyz` decides whether the load balancer sends a pod new clients. Redis is shared by every
 * pod and the pods serve without it (local delivery then resync, per-pod limits), so its outage
 * must not take the pods out of the Service; Postgres a pod cannot serve a handshake without.
 */

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  closeAllSockets();
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** `/readyz` statuses polled every 100 ms for `ms`. */
async function readinessOver(url: string, ms: number): Promise<number[]> {
  const statuses: number[] = [];
  for (const until = Date.now() + ms; Date.now() < until; ) {
    statuses.push((await request(url, 'GET', '/readyz')).status);
    await sleep(100);
  }
  return statuses;
}

describe('readiness', () => {
  it('stays ready while Redis does not answer, and the pod serves meanwhile', { timeout: 30_000 }, async () => {
    const redis = await startPrivateRedis();
    cleanup.push(() => redis.stop());
    const cluster: TestCluster = await startCluster(1, { REDIS_URL: redis.url, REDIS_BUS_CLUSTER_NODES: '' });
    cleanup.push(() => cluster.close());
    const url = cluster.pods[0]!.url;
    const alice = await makeUser();
    const room = await createRoom(url, alice);
    expect((await request(url, 'GET', '/readyz')).status).toBe(200);

    await redis.stop();
    // Before: the Redis ping failed at once (no offline queue), 503 from the first poll on.
    const statuses = await readinessOver(url, 2000);
    expect(statuses.filter((status) => status !== 200), statuses.join(' ')).toEqual([]);

    // What readiness promises the balancer: a new client connects, joins and sends.
    const socket = await connect(url, alice.token);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    const sent = await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '안녕' });
    expect(sent.ok, JSON.stringify(sent)).toBe(true);
  });

  it('is not ready while Postgres does not answer, and ready again once it does', { timeout: 30_000 }, async () => {
    const relay = await startTcpRelay(inject('databaseUrl'));
    cleanup.push(() => relay.close());
    const cluster = await startCluster(1, { DATABASE_URL: relay.url });
    cleanup.push(() => cluster.close());
    const url = cluster.pods[0]!.url;
    expect((await request(url, 'GET', '/readyz')).status).toBe(200);

    await relay.cut();
    await expect.poll(async () => (await request(url, 'GET', '/readyz')).status, { timeout: 10_000, interval: 200 }).toBe(503);
    await relay.restore();
    await expect.poll(async () => (await request(url, 'GET', '/readyz')).status, { timeout: 15_000, interval: 200 }).toBe(200);
  });

  it('answers 503 within the probe\'s timeout while Postgres is silent, and ready again once it answers', { timeout: 60_000 }, async () => {
    const relay = await startTcpRelay(inject('databaseUrl'));
    cleanup.push(() => relay.close());
    // The stall bound well past the probe's 2 s timeout (as in production: 15 s against 2 s).
    const cluster = await startCluster(1, { DATABASE_URL: relay.url, DATABASE_STALL_TIMEOUT_MS: '8000' });
    cleanup.push(() => cluster.close());
    const url = cluster.pods[0]!.url;
    expect((await request(url, 'GET', '/readyz')).status).toBe(200);

    relay.freeze();
    // Probes at once (kubelet, balancer) all get their answer, a 503, after the 1.5 s bound (under
    // a 2 s probe's timeout; a loaded machine's slack allowed), not at the 8 s stall bound.
    const started = Date.now();
    const probes = await Promise.all(Array.from({ length: 5 }, () => request(url, 'GET', '/readyz')));
    expect(probes.map((probe) => probe.status)).toEqual([503, 503, 503, 503, 503]);
    expect(Date.now() - started, 'answered at the readiness bound').toBeLessThan(3000);

    relay.thaw();
    // Once the stall bound has replaced the frozen connections, ready again.
    await expect.poll(async () => (await request(url, 'GET', '/readyz')).status, { timeout: 20_000, interval: 250 }).toBe(200);
  });
});
