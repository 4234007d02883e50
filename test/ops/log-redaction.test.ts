import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { io } from 'socket.io-client';
import {
  closeAllSockets,
  connect,
  createRoom,
  emitAck,
  killAllProcesses,
  makeUser,
  request,
  sleep,
  spawnGateway,
  uniquePrefix,
  type GatewayProcess,
} from '@chat/testing';

const cluster = () => ({ databaseUrl: inject('databaseUrl'), redisUrl: inject('redisUrl'), redisPrefix: prefix, busClusterNodes: inject('busClusterNodes') || null });
let prefix: string;
let pod: GatewayProcess;

beforeAll(async () => {
  prefix = uniquePrefix('logs');
  // trace: every line the gateway can write is written.
  pod = await spawnGateway(cluster(), { LOG_LEVEL: 'trace', POD_NAME: 'log-redaction' });
});

afterAll(async () => {
  closeAllSockets();
  await killAllProcesses();
});

describe('logs never contain a token', () => {
  it('greps a real run of the gateway for every token it was given', async () => {
    const alice = await makeUser('김철수');
    const expired = await makeUser('이영희', { expiresInSeconds: -60 });
    const room = await createRoom(pod.url, alice);

    // REST: header, a bad header, and a token in the query string of a logged URL.
    await request(pod.url, 'GET', `/api/rooms/${room.roomId}/messages`, { token: alice.token });
    await request(pod.url, 'GET', `/api/rooms/${room.roomId}/messages`, { token: `${alice.token}x` });
    await fetch(`${pod.url}/api/rooms/${room.roomId}/messages?token=${alice.token}&access_token=${alice.token}`);
    await fetch(`${pod.url}/no-such-route?token=${alice.token}`);
    await request(pod.url, 'DELETE', `/api/messages/${crypto.randomUUID()}`, { token: expired.token });

    // Socket.IO: auth, query, header; a refused expired token; an event that fails.
    const socket = await connect(pod.url, alice.token);
    await emitAck(socket, 'join-room', { roomId: room.roomId });
    await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: 'hi' });
    await emitAck(socket, 'send-message', { roomId: 'nope', type: 'text', content: 'hi' });
    const viaQuery = io(`${pod.url}/socket`, { transports: ['websocket'], query: { token: alice.token }, forceNew: true, reconnection: false });
    const viaHeader = io(`${pod.url}/socket`, {
      transports: ['websocket'],
      extraHeaders: { authorization: `Bearer ${alice.token}` },
      forceNew: true,
      reconnection: false,
    });
    const refused = io(`${pod.url}/socket`, { transports: ['websocket'], auth: { token: expired.token }, forceNew: true, reconnection: false });
    await sleep(1000);
    viaQuery.close();
    viaHeader.close();
    refused.close();
    socket.close();
    await sleep(500);

    const output = pod.output();
    // The run did log (requests, errors): the absence below is not an empty log's.
    expect(output).toContain('incoming request');
    expect(output).toContain('[REDACTED]');
    for (const token of [alice.token, expired.token]) {
      const [header, payload, signature] = token.split('.');
      expect(output).not.toContain(token);
      expect(output).not.toContain(`${header}.${payload}`);
      expect(output).not.toContain(signature!);
    }
  });
});
