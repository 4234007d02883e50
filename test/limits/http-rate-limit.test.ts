import type { Sql } from 'postgres';
import { describe, expect } from 'vitest';
import { signToken } from '@chat/auth';
import { ERRORS } from '@chat/protocol';
import { TEST_JWT_SECRET, makeUser, request, sleep, startPrivateRedis } from '@chat/testing';
import { clusterTest, startCluster, type TestCluster } from '../support/index.ts';

/**
 * HTTP rate limit on /api/* (issue 5: probes and /metrics exempt): one budget per user (valid
 * token), or per address for everyone else (an IPv6 address's /64), shared by both pods
 * through Redis. A budget of 5 per minute here.
 */

let cluster: TestCluster;
let sql: Sql;
const BUDGET = 5;

const it = clusterTest({ pods: 2, env: { HTTP_RATE_LIMIT_PER_MINUTE: String(BUDGET) } });
it.beforeAll(({ cluster: started, sql: db }) => {
  cluster = started;
  sql = db;
});

const pod = (index: number) => cluster.pods[index % 2]!.url;

describe('HTTP rate limit', () => {
  it('refuses a token past its budget across both pods with 429 TOO_MANY_REQUESTS and Retry-After, and changes nothing', async () => {
    const user = await makeUser('한도초과');
    for (let i = 0; i < BUDGET; i++) {
      expect((await request(pod(i), 'GET', '/api/rooms', { token: user.token })).status).toBe(200);
    }
    const name = `limited-${Date.now()}`;
    const response = await fetch(`${pod(BUDGET)}/api/rooms`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name }),
    });
    expect(response.status).toBe(429);
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await response.json()).toEqual({
      statusCode: 429,
      error: 'Too Many Requests',
      message: ERRORS.TOO_MANY_REQUESTS.message,
      code: 'TOO_MANY_REQUESTS',
    });
    expect(await sql`select 1 from rooms where name = ${name}`).toHaveLength(0);

    // The budget is the user's, not the token's: signing in again buys nothing.
    // (another lifetime, so never the same token even when signed within the same second)
    const { token: fresh } = await signToken({ secret: TEST_JWT_SECRET, userId: user.userId, nickname: user.nickname, expiresInSeconds: 1800 });
    expect(fresh).not.toBe(user.token);
    expect((await request(pod(0), 'GET', '/api/rooms', { token: fresh })).status).toBe(429);
  });

  it('charges a route however its path is spelled: percent-escapes the router decodes buy no fresh budget', async () => {
    const user = await makeUser('인코딩');
    for (let i = 0; i < BUDGET; i++) expect((await request(pod(i), 'GET', '/api/rooms', { token: user.token })).status).toBe(200);
    // Each of these reaches GET /api/rooms (the router decodes the path), so each is past the budget.
    for (const path of ['/%61pi/rooms', '/%61%70%69/rooms', '/api/%72ooms']) {
      expect((await request(pod(0), 'GET', path, { token: user.token })).status, path).toBe(429);
    }
  });

  it('gives each user its own budget, apart from the guests of the same address', async () => {
    const other = await makeUser('다른사용자');
    expect((await request(pod(0), 'GET', '/api/rooms', { token: other.token })).status).toBe(200);
    for (let i = 0; i < BUDGET; i++) expect((await request(pod(i), 'GET', '/api/rooms')).status).toBe(200);
    expect((await request(pod(1), 'GET', '/api/rooms')).status).toBe(429);
    expect((await request(pod(1), 'GET', '/api/rooms', { token: other.token })).status).toBe(200);
  });

  it('charges made-up or expired tokens to the address, so rotating them buys no fresh budget', async () => {
    // The guests of this address spent its budget in the test above.
    const forged = await signToken({ secret: 'not-the-cluster-secret-0123456789', userId: crypto.randomUUID(), nickname: '위조' });
    const expired = await makeUser('만료', { expiresInSeconds: -60 });
    for (const token of ['made-up-1', 'made-up-2', forged.token, expired.token]) {
      expect((await request(pod(0), 'GET', '/api/rooms', { token })).status, token).toBe(429);
      // Routes that authenticate too: the limit comes first, so a token stuffer past the budget
      // is not answered 401 after a signature check (or a user lookup) on every try.
      expect((await request(pod(1), 'POST', '/api/rooms', { token, body: { name: '방' } })).status, token).toBe(429);
      expect((await request(pod(0), 'DELETE', `/api/messages/${crypto.randomUUID()}`, { token })).status, token).toBe(429);
    }
  });

  it('charges a guest behind the load balancer to the address the balancer saw, whatever X-Forwarded-For it sends itself', async () => {
    // The balancer (here 127.0.0.1, a private address) appends the address it saw to the header
    // the client sent: `spoofed…, real`. Only the right-most address it did not add itself counts.
    const octet = () => 1 + Math.floor(Math.random() * 254);
    const real = `203.0.113.${octet()}`;
    const via = (spoofed: string, client = real) => ({ headers: { 'x-forwarded-for': `${spoofed}, ${client}` } });
    for (let i = 0; i < BUDGET; i++) expect((await request(pod(i), 'GET', '/api/rooms', via(`198.51.100.${i}`))).status).toBe(200);
    expect((await request(pod(1), 'GET', '/api/rooms', via('198.51.100.200'))).status).toBe(429);
    // Another client behind the same balancer has its own budget.
    let other = `203.0.113.${octet()}`;
    while (other === real) other = `203.0.113.${octet()}`;
    expect((await request(pod(0), 'GET', '/api/rooms', via('198.51.100.200', other))).status).toBe(200);
  });

  it('charges every address of an IPv6 /64 to one budget (a host picks its addresses from its /64), another /64 to its own', async () => {
    const group = () => (1 + Math.floor(Math.random() * 0xfffe)).toString(16);
    const prefix = `2001:db8:${group()}:${group()}`;
    const via = (client: string) => ({ headers: { 'x-forwarded-for': client } });
    // A fresh address of the /64 for every request, as a client rotating through it would.
    for (let i = 0; i < BUDGET; i++) expect((await request(pod(i), 'GET', '/api/rooms', via(`${prefix}::${group()}:${i + 1}`))).status).toBe(200);
    expect((await request(pod(1), 'GET', '/api/rooms', via(`${prefix}:ffff:ffff:ffff:ffff`))).status).toBe(429);
    // Spelled another way (upper case, zeros written out): still that /64.
    const [a, b, c, d] = prefix.split(':') as [string, string, string, string];
    const spelled = `${a}:${b.padStart(4, '0')}:${c.toUpperCase()}:${d.padStart(4, '0')}:0:0:0:7`;
    expect((await request(pod(0), 'GET', '/api/rooms', via(spelled))).status).toBe(429);
    // The neighbouring /64 is another host's.
    const next = `${a}:${b}:${c}:${(Number.parseInt(d, 16) + 1).toString(16)}`;
    expect((await request(pod(0), 'GET', '/api/rooms', via(`${next}::${group()}`))).status).toBe(200);
  });

  it('charges an IPv4-mapped IPv6 address (::ffff:a.b.c.d) to that IPv4 address', async () => {
    const octet = () => 1 + Math.floor(Math.random() * 254);
    const address = `198.18.${octet()}.${octet()}`;
    const via = (client: string) => ({ headers: { 'x-forwarded-for': client } });
    for (let i = 0; i < BUDGET; i++) {
      expect((await request(pod(i), 'GET', '/api/rooms', via(i % 2 ? `::ffff:${address}` : address))).status).toBe(200);
    }
    expect((await request(pod(0), 'GET', '/api/rooms', via(address))).status).toBe(429);
    expect((await request(pod(1), 'GET', '/api/rooms', via(`::ffff:${address}`))).status).toBe(429);
  });

  it('never limits probes, /metrics or the web page, even for an address past its budget', async () => {
    expect((await request(pod(0), 'GET', '/api/rooms')).status).toBe(429);
    for (let i = 0; i < 3 * BUDGET; i++) {
      for (const path of ['/livez', '/readyz', '/metrics']) {
        expect((await fetch(`${pod(i)}${path}`)).status, path).toBe(200);
      }
      // 200 once `pnpm build:web` has run, 503 before: never 429
      expect((await fetch(`${pod(i)}/`)).status).not.toBe(429);
    }
  });
});

describe('HTTP rate limit without Redis', () => {
  it('a frozen Redis makes one request a second wait for it, not every request', async () => {
    const redis = await startPrivateRedis();
    const local = await startCluster(1, { REDIS_URL: redis.url, HTTP_RATE_LIMIT_PER_MINUTE: '100' });
    try {
      const url = local.pods[0]!.url;
      expect((await request(url, 'GET', '/api/rooms')).status).toBe(200);
      // Stopped, not dead: the connection stays open and nothing answers; each command gives
      // up after the client's timeout (500 ms).
      redis.freeze(true);
      const timed = async () => {
        const started = Date.now();
        expect((await request(url, 'GET', '/api/rooms')).status).toBe(200);
        return Date.now() - started;
      };
      // The first asks Redis and waits out the timeout; the twenty sent right after it are
      // counted in memory. Without that each of them waited for Redis too: none could answer
      // before its 500 ms timeout.
      expect(await timed()).toBeGreaterThanOrEqual(400);
      const took = await Promise.all(Array.from({ length: 20 }, timed));
      expect(took.filter((ms) => ms < 400).length, `request times ${took.join(', ')} ms`).toBeGreaterThanOrEqual(15);
    } finally {
      redis.freeze(false);
      await local.close();
      await sleep(300);
      await redis.stop();
    }
  });

  it('while Redis is down each pod counts the budget by itself, and the shared count is back with Redis', async () => {
    const redis = await startPrivateRedis();
    const local = await startCluster(1, { REDIS_URL: redis.url, HTTP_RATE_LIMIT_PER_MINUTE: '2' });
    try {
      const url = local.pods[0]!.url;
      await redis.stop();
      // Served within the budget (not refused for want of Redis), then limited all the same.
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await request(url, 'GET', '/api/rooms')).status);
      expect(statuses).toEqual([200, 200, 429, 429, 429, 429]);
      const refused = await fetch(`${url}/api/rooms`);
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(((await refused.json()) as { code?: string }).code).toBe('TOO_MANY_REQUESTS');

      // Redis back (empty, as after a crash): the shared count decides again. The pod's own
      // count is spent, so a request served means Redis answered; then the budget runs out there.
      await redis.start();
      // The commands client reconnects with a back-off of up to 2 s.
      let served = false;
      for (let i = 0; i < 60 && !served; i++) {
        served = (await request(url, 'GET', '/api/rooms')).status === 200;
        if (!served) await sleep(100);
      }
      expect(served).toBe(true);
      expect((await request(url, 'GET', '/api/rooms')).status).toBe(200);
      expect((await request(url, 'GET', '/api/rooms')).status).toBe(429);
    } finally {
      await local.close();
      await sleep(300);
      await redis.stop();
    }
  });
});
