import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRoom, makeUser, type TestUser } from '@chat/testing';
import { startCluster, type TestCluster } from '../support/index.ts';

/**
 * PROTOCOL §13: the users' REST routes answer CORS for the origins of CORS_ORIGINS (as the socket
 * does, §1), so a page served from another origin reads history and makes rooms; the server API
 * does not, and no other origin gets CORS headers. Preflights spend no rate-limit budget: a page
 * sends one per URL it calls with a token.
 */

const PAGE = 'https://chat.example';
const HTTP_BUDGET = 5;

let cluster: TestCluster;
let url: string;
let owner: TestUser;

beforeAll(async () => {
  cluster = await startCluster(1, { CORS_ORIGINS: `${PAGE},http://other.example`, HTTP_RATE_LIMIT_PER_MINUTE: String(HTTP_BUDGET) });
  url = cluster.pods[0]!.url;
  owner = await makeUser('김철수');
});
afterAll(async () => {
  await cluster?.close();
});

function preflight(path: string, origin: string, method = 'GET') {
  return fetch(`${url}${path}`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization' },
  });
}

describe('CORS on the REST routes', () => {
  it('answers an allowed origin\'s preflight and requests, and exposes the rate-limit headers', async () => {
    const room = await createRoom(url, owner);
    const path = `/api/rooms/${room.roomId}/messages?limit=5`;
    const answer = await preflight(path, PAGE);
    expect(answer.status).toBe(204);
    expect(answer.headers.get('access-control-allow-origin')).toBe(PAGE);
    expect(answer.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    expect(answer.headers.get('access-control-allow-methods')).toContain('DELETE');
    expect(answer.headers.get('access-control-max-age')).toBe('600');
    expect(answer.headers.get('access-control-allow-credentials')).toBeNull();

    const read = await fetch(`${url}${path}`, { headers: { origin: PAGE, authorization: `Bearer ${owner.token}` } });
    expect(read.status).toBe(200);
    expect(read.headers.get('access-control-allow-origin')).toBe(PAGE);
    expect(read.headers.get('vary')?.toLowerCase()).toContain('origin');
    expect(read.headers.get('access-control-expose-headers')?.toLowerCase()).toContain('retry-after');
  });

  it('gives no CORS to other origins, to requests without Origin, or on the server API', async () => {
    const room = await createRoom(url, owner);
    const refused = await preflight(`/api/rooms/${room.roomId}`, 'https://evil.example');
    expect(refused.status).toBe(404);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    const plain = await fetch(`${url}/api/rooms/${room.roomId}`);
    expect(plain.headers.get('access-control-allow-origin')).toBeNull();
    const serverApi = await preflight(`/api/server/rooms/${room.roomId}/close`, PAGE, 'POST');
    expect(serverApi.status).toBe(404);
    expect(serverApi.headers.get('access-control-allow-origin')).toBeNull();
    // The server API as spelled with escapes is the server API still.
    const escaped = await preflight(`/api/%73erver/rooms/${room.roomId}/close`, PAGE, 'POST');
    expect(escaped.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('spends no budget on preflights', async () => {
    const guest = '203.0.113.7';
    for (let i = 0; i < HTTP_BUDGET * 3; i++) {
      const answer = await fetch(`${url}/api/rooms?limit=${i + 1}`, {
        method: 'OPTIONS',
        headers: { origin: PAGE, 'access-control-request-method': 'GET', 'x-forwarded-for': guest },
      });
      expect(answer.status, `preflight ${i}`).toBe(204);
    }
    const read = await fetch(`${url}/api/rooms`, { headers: { origin: PAGE, 'x-forwarded-for': guest } });
    expect(read.status).toBe(200);
  });
});
