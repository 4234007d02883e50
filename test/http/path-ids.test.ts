import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { ERRORS, type ErrorCode } from '@chat/protocol';
import { createRoom, makeUser, request, type HttpResult } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * PROTOCOL §7, §8, §13: an id in the path that is not a UUID is "not found" with the catalog's
 * body, however it is not one: too long for the router (over 100 characters), or not valid
 * percent-encoding (`%ZZ`, a cut UTF-8 sequence). A path that is not valid percent-encoding and
 * names no id of a route is 400 INVALID_REQUEST. No answer echoes the URL back, and none is
 * Fastify's own (`FST_ERR_…`, 414).
 */

const KEY = `sk_${randomBytes(24).toString('hex')}`;
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

const it = clusterTest({ pods: 1, env: { SERVER_API_KEYS: `backend:${sha256(KEY)}` } });

// The catalog's own words (packages/protocol, kept identical to docs/PROTOCOL.md by its test).
const errorBody = (code: ErrorCode, error: string) => ({ statusCode: ERRORS[code].status, error, message: ERRORS[code].message, code });
const ROOM_NOT_FOUND = errorBody('ROOM_NOT_FOUND', 'Not Found');
const MESSAGE_NOT_FOUND = errorBody('MESSAGE_NOT_FOUND', 'Not Found');
const UNAUTHORIZED = errorBody('UNAUTHORIZED', 'Unauthorized');
const INVALID_REQUEST = errorBody('INVALID_REQUEST', 'Bad Request');

const LONG = 'a'.repeat(101);
const VERY_LONG = 'b'.repeat(4000);
/** Ids no router can take: too long, or not valid percent-encoding. */
const BAD_IDS = [LONG, VERY_LONG, '%ZZ', '%E0%A4%A', `${randomUUID()}%`, '%'];

/** The answer, and that it names nothing of the URL it was asked. */
function expectAnswer(result: HttpResult, expected: { status: number; body: unknown }, path: string) {
  expect(result, path).toEqual(expected);
  const text = JSON.stringify(result.body);
  for (const piece of ['aaaaaaaaaa', 'bbbbbbbbbb', 'ZZ', '%E0', 'FST_ERR', 'exceeding', '/api/']) expect(text, path).not.toContain(piece);
}

describe('ids in the path that are not UUIDs', () => {
  it('GET /api/rooms/:roomId/messages (and the room, members, changes routes): 404 방을 찾을 수 없습니다', async ({ url }) => {
    const user = await makeUser('김철수');
    for (const id of BAD_IDS) {
      for (const path of [`/api/rooms/${id}/messages`, `/api/rooms/${id}/messages?limit=10`, `/api/rooms/${id}`, `/api/rooms/${id}/changes`]) {
        expectAnswer(await request(url, 'GET', path), { status: 404, body: ROOM_NOT_FOUND }, path);
      }
      const members = `/api/rooms/${id}/members`;
      expectAnswer(await request(url, 'GET', members, { token: user.token }), { status: 404, body: ROOM_NOT_FOUND }, members);
    }
  });

  it('DELETE /api/messages/:messageId: 404 메시지를 찾을 수 없습니다', async ({ url }) => {
    const user = await makeUser('김철수');
    for (const id of BAD_IDS) {
      const path = `/api/messages/${id}`;
      expectAnswer(await request(url, 'DELETE', path, { token: user.token }), { status: 404, body: MESSAGE_NOT_FOUND }, path);
    }
    // An id that is only too long reaches the route, which asks for the token first, as for any id.
    expectAnswer(await request(url, 'DELETE', `/api/messages/${LONG}`), { status: 401, body: UNAUTHORIZED }, 'no token');
  });

  it('the server API: 404 방을 찾을 수 없습니다 for its roomId too', async ({ url }) => {
    for (const id of BAD_IDS) {
      const path = `/api/server/rooms/${id}/close`;
      expectAnswer(await request(url, 'POST', path, { headers: { 'x-api-key': KEY } }), { status: 404, body: ROOM_NOT_FOUND }, path);
    }
  });

  it('a path that is not valid percent-encoding anywhere else: 400 잘못된 요청입니다', async ({ url }) => {
    const owner = await makeUser('방장');
    const room = await createRoom(url, owner);
    for (const path of ['/%ZZ', '/api/%ZZ', '/api/rooms/%E0%A4%A/messages/more', `/api/rooms/${room.roomId}/mess%ZZ`, '/docs/%ZZ']) {
      expectAnswer(await request(url, 'GET', path), { status: 400, body: INVALID_REQUEST }, path);
    }
    // The routes still answer a well-formed request as before.
    expect((await request(url, 'GET', `/api/rooms/${room.roomId}/messages`)).status).toBe(200);
    expect((await request(url, 'GET', `/api/rooms/${randomUUID()}/messages`)).body).toEqual(ROOM_NOT_FOUND);
  });
});
