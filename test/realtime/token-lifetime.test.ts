import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect } from 'vitest';
import { buildGateway, loadConfig } from '@chat/gateway';
import {
  TEST_JWT_SECRET,
  connect,
  connectError,
  makeUser,
  nextEvent,
  nowSeconds,
  rawJwt,
  request,
  uniquePrefix,
} from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * Issue 18, point 4: how long a token may live. JWT_MAX_LIFETIME_SECONDS (off by default)
 * refuses tokens that live longer (exp − iat, and exp − now); a token whose exp is further away
 * than setTimeout can hold (~24.8 days) still gets its expiry timer, armed in steps.
 */

const MAX_LIFETIME = 3600;
const INVALID_TOKEN = { message: '유효하지 않은 토큰입니다', data: { code: 'INVALID_TOKEN' } };

const it = clusterTest({ pods: 1, env: { JWT_MAX_LIFETIME_SECONDS: String(MAX_LIFETIME) } });

function token(claims: Record<string, unknown>) {
  return rawJwt({ alg: 'HS256', typ: 'JWT' }, { sub: randomUUID(), nickname: '수명', ...claims }, TEST_JWT_SECRET);
}

async function refusal(url: string, jwt: string) {
  const error = await connectError(url, { auth: { token: jwt } });
  return { message: error.message, data: error.data };
}

describe('JWT_MAX_LIFETIME_SECONDS', () => {
  it('accepts a token that lives exactly the maximum', async ({ url }) => {
    const now = nowSeconds();
    const socket = await connect(url, token({ iat: now, exp: now + MAX_LIFETIME }));
    expect(socket.connected).toBe(true);
  });

  it('refuses a token whose exp − iat is longer, at the handshake and on REST', async ({ url }) => {
    const now = nowSeconds();
    const long = token({ iat: now, exp: now + MAX_LIFETIME + 60 });
    expect(await refusal(url, long)).toEqual(INVALID_TOKEN);
    const rest = await request(url, 'POST', '/api/rooms', { token: long, body: { name: '방' } });
    expect(rest.status).toBe(401);
  });

  it('refuses a token issued long ago that is still valid (exp − iat counts, not what is left)', async ({ url }) => {
    const now = nowSeconds();
    expect(await refusal(url, token({ iat: now - 86_400, exp: now + 600 }))).toEqual(INVALID_TOKEN);
  });

  it('refuses a token without iat whose exp is further away than the maximum, accepts one within it', async ({ url }) => {
    const now = nowSeconds();
    expect(await refusal(url, token({ exp: now + MAX_LIFETIME + 60 }))).toEqual(INVALID_TOKEN);
    expect((await connect(url, token({ exp: now + 600 }))).connected).toBe(true);
  });

  it('the development login issues tokens within it, which the gateway then accepts', async ({ url }) => {
    const login = await request(url, 'POST', '/api/auth/token', { body: { nickname: '개발' } });
    expect(login.status).toBe(200);
    const { accessToken, expiresAt } = login.body as { accessToken: string; expiresAt: string };
    expect(Date.parse(expiresAt)).toBeLessThanOrEqual((nowSeconds() + MAX_LIFETIME + 1) * 1000);
    expect((await connect(url, accessToken)).connected).toBe(true);
  });

  it('refuses a token whose iat is in the future, which would shorten exp − iat', async ({ url }) => {
    const now = nowSeconds();
    expect(await refusal(url, token({ iat: now + 86_400, exp: now + 86_400 + 60 }))).toEqual(INVALID_TOKEN);
  });
});

describe('a token that expires further away than setTimeout holds', () => {
  const pods: { close(): Promise<void> }[] = [];
  afterAll(async () => {
    await Promise.all(pods.map((pod) => pod.close()));
  });

  it('is accepted by default (no maximum lifetime)', async ({ cluster }) => {
    const gateway = await buildGateway(
      loadConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        DATABASE_URL: cluster.databaseUrl,
        REDIS_URL: cluster.redisUrl,
        REDIS_PREFIX: uniquePrefix('lifetime'),
        JWT_SECRET: TEST_JWT_SECRET,
        LOG_LEVEL: 'silent',
        DATABASE_POOL_SIZE: '2',
      }),
    );
    pods.push(gateway);
    await gateway.http.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(gateway.http.server.address() as AddressInfo).port}`;
    const now = nowSeconds();
    const socket = await connect(url, token({ iat: now, exp: now + 60 * 86_400 }));
    expect(socket.connected).toBe(true);
  });

  it('still gets token-expired at its exp: the timer is re-armed in steps (a 300 ms step stands in for 24.8 days)', async ({ cluster }) => {
    const gateway = await buildGateway(
      loadConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        DATABASE_URL: cluster.databaseUrl,
        REDIS_URL: cluster.redisUrl,
        REDIS_PREFIX: uniquePrefix('lifetime'),
        JWT_SECRET: TEST_JWT_SECRET,
        LOG_LEVEL: 'silent',
        DATABASE_POOL_SIZE: '2',
      }),
      { tokenExpiryMaxStepMs: 300 },
    );
    pods.push(gateway);
    await gateway.http.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(gateway.http.server.address() as AddressInfo).port}`;
    const user = await makeUser('긴토큰', { expiresInSeconds: 2 });
    const exp = JSON.parse(Buffer.from(user.token.split('.')[1]!, 'base64url').toString()).exp as number;
    const socket = await connect(url, user.token);
    const disconnected = new Promise<string>((resolve) => socket.once('disconnect', (reason) => resolve(reason)));
    expect(await nextEvent(socket, 'token-expired', 5000)).toEqual({});
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000 - 50);
    expect(await disconnected).toBe('io server disconnect');
  });
});
