import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createTokenVerifier, signToken, type TokenVerifier } from '@chat/auth';
import { buildGateway, loadConfig, type Gateway } from '@chat/gateway';
import { TEST_JWT_SECRET, createRoom, makeUser, request, uniquePrefix } from '@chat/testing';

/**
 * A token on an authenticated `/api` route is needed twice, by the rate limiter (whose budget)
 * and by the route's authentication (which user): its signature is checked once per request,
 * both sharing the result. One pod, built here rather than with startCluster so the verifier
 * can be wrapped to count its calls; real Postgres and Redis.
 */

let gateway: Gateway;
let url: string;
let redis: Redis;
let redisPrefix: string;
let verifications = 0;

beforeAll(async () => {
  redisPrefix = uniquePrefix('verify');
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    POD_NAME: 'test-verify-pod',
    DATABASE_URL: inject('databaseUrl'),
    REDIS_URL: inject('redisUrl'),
    REDIS_PREFIX: redisPrefix,
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    DATABASE_POOL_SIZE: '4',
    HTTP_RATE_LIMIT_PER_MINUTE: '1000',
  });
  const verify = createTokenVerifier(config.jwt);
  const countingVerify: TokenVerifier = (token) => {
    verifications += 1;
    return verify(token);
  };
  gateway = await buildGateway(config, { verifyToken: countingVerify });
  await gateway.http.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(gateway.http.server.address() as AddressInfo).port}`;
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await gateway?.close();
  redis?.disconnect();
});
beforeEach(() => {
  verifications = 0;
});

/** Requests the limiter has counted against one budget key (`u:<sub>` or `a:<ip>`). */
async function spent(budgetKey: string): Promise<number> {
  return Number((await redis.get(`${redisPrefix}:http-rate:${budgetKey}`)) ?? 0);
}

describe('token verification on /api', () => {
  it('verifies a valid token once for an authenticated request, which spends the user budget', async () => {
    const user = await makeUser('한번검증');
    const result = await request(url, 'POST', '/api/rooms', { token: user.token, body: { name: '검증 한 번' } });
    expect(result.status).toBe(201);
    expect(verifications).toBe(1);
    expect(await spent(`u:${user.userId}`)).toBe(1);

    verifications = 0;
    const history = await request(url, 'GET', `/api/rooms/${result.body.roomId}/messages`, { token: user.token });
    expect(history.status).toBe(200);
    expect(verifications).toBe(1);
    expect(await spent(`u:${user.userId}`)).toBe(2);
  });

  it('verifies again on every request: nothing is remembered past the request', async () => {
    const user = await makeUser('매번검증');
    const room = await createRoom(url, user);
    verifications = 0;
    for (let i = 0; i < 3; i++) {
      expect((await request(url, 'GET', `/api/rooms/${room.roomId}/messages`, { token: user.token })).status).toBe(200);
    }
    expect(verifications).toBe(3);
  });

  it('answers an invalid or expired token with 401 UNAUTHORIZED after one verification', async () => {
    const forged = await signToken({ secret: 'not-the-pod-secret-0123456789abcdef', userId: crypto.randomUUID(), nickname: '위조' });
    const expired = await makeUser('만료', { expiresInSeconds: -60 });
    for (const token of ['made-up', forged.token, expired.token]) {
      verifications = 0;
      const result = await request(url, 'POST', '/api/rooms', { token, body: { name: '거절' } });
      expect(result.status).toBe(401);
      expect(result.body.code).toBe('UNAUTHORIZED');
      expect(verifications).toBe(1);
    }
  });

  it('charges an invalid token on an open route to the client address, after one verification', async () => {
    const before = await spent('a:127.0.0.1');
    expect((await request(url, 'GET', '/api/rooms', { token: 'made-up' })).status).toBe(200);
    expect(verifications).toBe(1);
    expect(await spent('a:127.0.0.1')).toBe(before + 1);
  });

  it('verifies nothing for a guest', async () => {
    expect((await request(url, 'GET', '/api/rooms')).status).toBe(200);
    expect(verifications).toBe(0);
  });
});
