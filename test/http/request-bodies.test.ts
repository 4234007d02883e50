import { describe, expect } from 'vitest';
import { ERRORS } from '@chat/protocol';
import { createRoom, emitAck, makeUser, rawRequest, type TestUser } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * PROTOCOL §13: the bodies the REST routes read. JSON only (anything else 415), and an empty body
 * is no body whatever its Content-Type says, so a bodyless route is answered as it always is.
 */

const INVALID_REQUEST = { statusCode: 400, error: 'Bad Request', message: ERRORS.INVALID_REQUEST.message, code: 'INVALID_REQUEST' };
const UNSUPPORTED = { statusCode: 415, error: 'Unsupported Media Type', message: ERRORS.INVALID_REQUEST.message, code: 'INVALID_REQUEST' };

const it = clusterTest({ pods: 1, env: { ROOM_CREATE_RATE_LIMIT_PER_MINUTE: '1000' } });

let url: string;
let owner: TestUser;
it.beforeAll(async ({ url: podUrl }) => {
  url = podUrl;
  owner = await makeUser('본문검사');
});

const roomsNamed = async (sql: import('postgres').Sql, name: string) =>
  Number((await sql<{ n: number }[]>`select count(*)::int as n from rooms where name = ${name}`)[0]!.n);

describe('request bodies', () => {
  it('DELETE /api/messages/:id with Content-Type: application/json and no body deletes (200), as without the header', async ({ connect, sql }) => {
    const room = await createRoom(url, owner);
    const socket = await connect(url, owner.token);
    await emitAck(socket, 'join-room', { roomId: room.roomId });
    const sent = await emitAck<{ messageId: string }>(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '지울 메시지' });
    if (!sent.ok) throw new Error('send failed');
    const headers = { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' };

    // fetch sends `Content-Length: 0` for an empty string body.
    const deleted = await rawRequest(url, 'DELETE', `/api/messages/${sent.data.messageId}`, { headers, body: '' });
    expect(deleted).toMatchObject({ status: 200, json: { success: true } });
    const [row] = await sql<{ is_deleted: boolean }[]>`select is_deleted from messages where id = ${sent.data.messageId}`;
    expect(row?.is_deleted).toBe(true);
    // Gone now: the route's own answer, not a body error.
    const again = await rawRequest(url, 'DELETE', `/api/messages/${sent.data.messageId}`, { headers, body: '' });
    expect(again).toMatchObject({ status: 404, json: { code: 'MESSAGE_NOT_FOUND' } });
  });

  it('a POST whose body is missing is the route\'s 400 whatever the Content-Type, nothing stored', async () => {
    for (const headers of [{}, { 'content-type': 'application/json' }, { 'content-type': 'text/plain' }] as Record<string, string>[]) {
      const result = await rawRequest(url, 'POST', '/api/rooms', { headers: { ...headers, authorization: `Bearer ${owner.token}` }, body: '' });
      expect(result, JSON.stringify(headers)).toMatchObject({ status: 400, json: INVALID_REQUEST });
    }
  });

  it('a JSON body sent as text/plain (fetch\'s default for a string) is 415, nothing stored', async ({ sql }) => {
    const name = `text-plain-${Date.now()}`;
    const body = JSON.stringify({ name });
    const plain = await rawRequest(url, 'POST', '/api/rooms', {
      headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'text/plain' },
      body,
    });
    expect(plain).toMatchObject({ status: 415, json: UNSUPPORTED });
    // No header at all: fetch adds `text/plain;charset=UTF-8`.
    const implicit = await rawRequest(url, 'POST', '/api/rooms', { headers: { authorization: `Bearer ${owner.token}` }, body });
    expect(implicit).toMatchObject({ status: 415, json: UNSUPPORTED });
    expect(await roomsNamed(sql, name)).toBe(0);
  });

  it('JSON keeps its rules: parameters and case of the media type, and __proto__ refused', async ({ sql }) => {
    const name = `json-${Date.now()}`;
    for (const contentType of ['application/json; charset=utf-8', 'Application/JSON']) {
      const created = await rawRequest(url, 'POST', '/api/rooms', {
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': contentType },
        body: JSON.stringify({ name }),
      });
      expect(created.status, contentType).toBe(201);
    }
    for (const body of [`{"name":"${name}","__proto__":{"x":1}}`, `{"name":"${name}","constructor":{"prototype":{"x":1}}}`, '   ']) {
      const refused = await rawRequest(url, 'POST', '/api/rooms', {
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
        body,
      });
      expect(refused, body).toMatchObject({ status: 400, json: INVALID_REQUEST });
    }
    expect(await roomsNamed(sql, name)).toBe(2);
  });
});
