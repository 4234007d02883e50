import type { Sql } from 'postgres';
import { describe, expect } from 'vitest';
import { makeUser, type TestUser } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * [ext] POST /api/rooms: ROOM_CREATE_RATE_LIMIT_PER_MINUTE per user, across pods (3 here).
 * Rooms live a day and every client lists them; without a budget one account could fill the
 * listing at the HTTP rate limit's pace (600 a minute).
 */

const LIMIT = 3;

const it = clusterTest({ pods: 2, env: { ROOM_CREATE_RATE_LIMIT_PER_MINUTE: String(LIMIT) } });

async function postRoom(url: string, user: TestUser, name: string) {
  const response = await fetch(`${url}/api/rooms`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` },
    body: JSON.stringify({ name }),
  });
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as Record<string, unknown> };
}

async function roomsCreatedBy(sql: Sql, userId: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from rooms where created_by = ${userId}`;
  return row!.n;
}

describe('room creation rate limit [ext]', () => {
  it('creates LIMIT rooms across pods, then answers 429 TOO_MANY_REQUESTS with Retry-After and stores nothing', async ({ cluster, sql }) => {
    const [a, b] = cluster.pods;
    const user = await makeUser('방부자');
    for (let index = 0; index < LIMIT; index++) {
      const created = await postRoom((index % 2 ? b : a)!.url, user, `방 ${index}`);
      expect(created.status, `room ${index + 1}`).toBe(201);
    }
    const refused = await postRoom(b!.url, user, '한 개 더');
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({
      statusCode: 429,
      error: 'Too Many Requests',
      message: '요청이 너무 많습니다. 잠시 후 다시 시도해주세요',
      code: 'TOO_MANY_REQUESTS',
    });
    const retryAfter = Number(refused.retryAfter);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(await roomsCreatedBy(sql, user.userId)).toBe(LIMIT);

    // Another user's budget is their own.
    const other = await makeUser('다른방장');
    expect((await postRoom(a!.url, other, '내 방')).status).toBe(201);
  });

  it('charges only a room that passes validation', async ({ cluster }) => {
    const [a] = cluster.pods;
    const user = await makeUser('검증');
    for (let attempt = 0; attempt < LIMIT * 2; attempt++) {
      expect((await postRoom(a!.url, user, '')).status).toBe(400);
    }
    expect((await postRoom(a!.url, user, '제대로 된 방')).status).toBe(201);
  });
});
