import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { describe, expect } from 'vitest';
import type { NewMessagePayload } from '@chat/protocol';
import { createRoom, emitAck, makeUser, request, sleep } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * Issue 20 §3: webhooks on real HTTP receivers (node:http on loopback), delivered by the
 * worker through BullMQ, verified with the receiver example printed in docs/webhooks.md.
 */
// Occupancy changes would interleave with the numbers these tests expect: none within a test.
// A server API key extends a room (its lifetime change is a change of the feed).
const API_KEY = `sk_${randomBytes(24).toString('hex')}`;
const it = clusterTest({
  pods: 2,
  ownDatabase: true,
  env: {
    MESSAGE_RATE_LIMIT_PER_MINUTE: '100000',
    ROOM_OCCUPANCY_GRACE_MS: '600000',
    SERVER_API_KEYS: `backend:${createHash('sha256').update(API_KEY).digest('hex')}`,
  },
});

type Verify = (input: { secret: string; timestamp: unknown; signature: unknown; rawBody: string; toleranceSeconds?: number }) => boolean;
const example = (await import(new URL('../../docs/examples/webhook-receiver.mjs', import.meta.url).href)) as { verifyWebhook: Verify };

const SECRET = 'a-webhook-secret-of-some-length';

interface Delivery {
  headers: IncomingMessage['headers'];
  rawBody: string;
  verified: boolean;
  events: { roomId: string; changeSeq: number; event: string; payload: Record<string, unknown> }[];
}

/** A receiver on loopback that records every POST, answering 200 only to a valid signature. */
async function startReceiver(port = 0) {
  const deliveries: Delivery[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const verified = example.verifyWebhook({
        secret: SECRET,
        timestamp: req.headers['x-chat-webhook-timestamp'],
        signature: req.headers['x-chat-webhook-signature'],
        rawBody,
      });
      deliveries.push({ headers: req.headers, rawBody, verified, events: verified ? JSON.parse(rawBody).events : [] });
      res.writeHead(verified ? 200 : 401).end();
    });
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    deliveries,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    /** Every event received, deduplicated by (roomId, changeSeq), in arrival order. */
    unique() {
      const seen = new Set<string>();
      return deliveries.flatMap((delivery) => delivery.events).filter((event) => {
        const key = `${event.roomId}:${event.changeSeq}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
    },
  };
}

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = probe();
    if (value) return value;
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

describe('webhooks [ext]', () => {
  it('delivers every change in order per room, again after a receiver outage, each verified', async ({ cluster, connect, startWorker }) => {
    const [a, b] = cluster.pods;
    let receiver = await startReceiver();
    const port = receiver.port;
    const deletesOnly = await startReceiver();
    await startWorker({
      WEBHOOK_POLL_INTERVAL_MS: '200',
      WEBHOOK_BATCH_SIZE: '4',
      WEBHOOK_ENDPOINTS: JSON.stringify([
        { id: 'all', url: `http://127.0.0.1:${port}/hooks`, secret: SECRET },
        { id: 'deletes', url: `http://127.0.0.1:${deletesOnly.port}/hooks`, secret: SECRET, kinds: ['message-deleted'] },
      ]),
    });

    const owner = await makeUser('방장');
    const guest = await makeUser('손님');
    const room = await createRoom(a!.url, owner);
    const ownerSocket = await connect(a!.url, owner.token);
    const guestSocket = await connect(b!.url, guest.token);
    await emitAck(ownerSocket, 'join-room', { roomId: room.roomId });
    await emitAck(guestSocket, 'join-room', { roomId: room.roomId });
    const send = async (content: string) => {
      const ack = await emitAck<NewMessagePayload>(ownerSocket, 'send-message', { roomId: room.roomId, type: 'text', content });
      if (!ack.ok) throw new Error('send failed');
      return ack.data;
    };
    for (const content of ['하나', '둘', '셋']) await send(content);
    await until('the first five changes', () => receiver.unique().length >= 5);
    expect(receiver.unique().map((event) => event.changeSeq)).toEqual([1, 2, 3, 4, 5]);
    expect(receiver.unique()[2]).toMatchObject({ roomId: room.roomId, event: 'new-message', payload: { content: '하나', seq: 1, changeSeq: 3 } });
    const first = receiver.deliveries[0]!;
    expect(first.headers['content-type']).toBe('application/json');
    expect(first.headers['x-chat-webhook-endpoint']).toBe('all');
    expect(first.headers['x-chat-webhook-signature']).toMatch(/^v1=[0-9a-f]{64}$/);

    // The receiver goes away; the room goes on: messages, a delete, a leave.
    await receiver.close();
    const kept = receiver.deliveries;
    const doomed = await send('넷');
    for (const content of ['다섯', '여섯', '일곱']) await send(content);
    expect((await request(a!.url, 'DELETE', `/api/messages/${doomed.messageId}`, { token: owner.token })).status).toBe(200);
    await emitAck(guestSocket, 'leave-room', { roomId: room.roomId });
    await sleep(1500); // several failed attempts, backing off

    receiver = await startReceiver(port);
    const all = await until('every change after the outage', () => receiver.unique().length >= 11 - 5 && receiver.unique());
    const delivered = [...kept.flatMap((delivery) => delivery.events), ...all];
    const unique = new Map(delivered.map((event) => [event.changeSeq, event]));
    expect([...unique.keys()].sort((x, y) => x - y)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
    // In order: every POST's events ascend, and POSTs follow each other.
    const order = receiver.deliveries.flatMap((delivery) => delivery.events.map((event) => event.changeSeq));
    expect(order).toEqual([...order].sort((x, y) => x - y));
    expect(unique.get(10)).toMatchObject({ event: 'message-deleted', payload: { messageId: doomed.messageId } });
    expect(unique.get(11)).toMatchObject({ event: 'user-left', payload: { userId: guest.userId, memberCount: 1 } });
    expect(receiver.deliveries.every((delivery) => delivery.verified)).toBe(true);

    // The filtered endpoint got the delete only.
    await until('the delete on the filtered endpoint', () => deletesOnly.unique().length >= 1);
    expect(deletesOnly.unique().map((event) => [event.event, event.changeSeq])).toEqual([['message-deleted', 10]]);
    await deletesOnly.close();
    await receiver.close();
  }, 40_000);

  it('a receiver with the wrong secret refuses every POST; a tampered body or signature fails the example verifier', async ({ cluster, connect, startWorker }) => {
    const [a] = cluster.pods;
    const receiver = await startReceiver();
    await startWorker({
      WEBHOOK_POLL_INTERVAL_MS: '200',
      WEBHOOK_ENDPOINTS: JSON.stringify([{ id: 'wrong', url: `http://127.0.0.1:${receiver.port}/`, secret: 'not-the-receivers-secret' }]),
    });
    const owner = await makeUser();
    const room = await createRoom(a!.url, owner);
    const socket = await connect(a!.url, owner.token);
    await emitAck(socket, 'join-room', { roomId: room.roomId });
    // Only this room's POSTs (the endpoint also gets the earlier test's room, from its start).
    const ofRoom = () => receiver.deliveries.filter((delivery) => delivery.rawBody.includes(room.roomId));
    await until('two attempts', () => ofRoom().length >= 2);
    expect(receiver.deliveries.every((delivery) => !delivery.verified)).toBe(true);
    // Not acknowledged, so retried from the same cursor: the room's events start again at the
    // same change. (A retry re-reads from the cursors, so the POST around them may differ: other
    // rooms' changes grouped differently, this room's later changes appended; docs/webhooks.md.)
    type Posted = { events: { roomId: string; changeSeq: number }[] };
    const roomEvents = (index: number) => (JSON.parse(ofRoom()[index]!.rawBody) as Posted).events.filter((event) => event.roomId === room.roomId);
    expect(roomEvents(0)[0]).toMatchObject({ changeSeq: 1 });
    expect(roomEvents(1)[0]).toEqual(roomEvents(0)[0]);
    await receiver.close();

    const { rawBody, headers } = ofRoom()[0]!;
    const signed = { timestamp: headers['x-chat-webhook-timestamp'], signature: headers['x-chat-webhook-signature'] };
    expect(example.verifyWebhook({ secret: 'not-the-receivers-secret', rawBody, ...signed })).toBe(true);
    expect(example.verifyWebhook({ secret: 'not-the-receivers-secret', rawBody: rawBody.replace('"changeSeq":1', '"changeSeq":2'), ...signed })).toBe(false);
    expect(example.verifyWebhook({ secret: 'not-the-receivers-secret', rawBody, ...signed, signature: String(signed.signature).replace(/.$/, (c) => (c === '0' ? '1' : '0')) })).toBe(false);
    expect(example.verifyWebhook({ secret: 'not-the-receivers-secret', rawBody, ...signed, timestamp: String(Number(signed.timestamp) + 1) })).toBe(false);
    expect(example.verifyWebhook({ secret: 'not-the-receivers-secret', rawBody, ...signed, toleranceSeconds: -1 })).toBe(false);
  });

  it('delivers a room\'s lifetime change (the server API extended it) to an endpoint whose kinds name it', async ({ cluster, connect, startWorker }) => {
    const [a] = cluster.pods;
    const receiver = await startReceiver();
    await startWorker({
      WEBHOOK_POLL_INTERVAL_MS: '200',
      WEBHOOK_ENDPOINTS: JSON.stringify([
        { id: 'lifetime', url: `http://127.0.0.1:${receiver.port}/`, secret: SECRET, kinds: ['room-lifetime-changed'] },
      ]),
    });
    const owner = await makeUser();
    const { roomId } = await createRoom(a!.url, owner);
    const socket = await connect(a!.url, owner.token);
    await emitAck(socket, 'join-room', { roomId });
    const extended = await request(a!.url, 'POST', `/api/server/rooms/${roomId}/extend`, {
      headers: { 'x-api-key': API_KEY },
      body: { ttlSeconds: 7200 },
    });
    expect(extended.status).toBe(200);

    const ofRoom = () => receiver.unique().filter((event) => event.roomId === roomId);
    await until('the lifetime change', () => ofRoom().length >= 1);
    // The join (change 1) is filtered out; the move is change 2, with the new expiry.
    const moved = { roomId, expiresAt: extended.body.expiresAt, changeSeq: 2 };
    expect(ofRoom()).toEqual([{ roomId, changeSeq: 2, event: 'room-lifetime-changed', payload: moved }]);
    await receiver.close();
  });

  it('a receiver that accepts the connection and never answers holds only its share of the deliveries: another endpoint is delivered meanwhile', async ({ cluster, startWorker }) => {
    const [a] = cluster.pods;
    // Accepts every connection, reads the request, never answers.
    const held: Socket[] = [];
    let mostHeldAtOnce = 0;
    const silent = createTcpServer((socket) => {
      held.push(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => held.splice(held.indexOf(socket), 1));
      mostHeldAtOnce = Math.max(mostHeldAtOnce, held.length);
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const receiver = await startReceiver();
    // Rooms in several delivery lanes (the last byte of the id), each with a message.
    const rooms = await Promise.all(Array.from({ length: 12 }, async () => createRoom(a!.url, await makeUser())));
    for (const { roomId } of rooms) {
      const published = await request(a!.url, 'POST', `/api/server/rooms/${roomId}/messages`, {
        headers: { 'x-api-key': API_KEY },
        body: { sender: { kind: 'bot', id: 'probe', name: '봇' }, type: 'text', content: '안녕' },
      });
      expect(published.status).toBe(201);
    }
    expect(new Set(rooms.map(({ roomId }) => parseInt(roomId.slice(-2), 16) % 16)).size).toBeGreaterThan(2);

    const worker = await startWorker({
      WEBHOOK_POLL_INTERVAL_MS: '200',
      // Two slots, and a silence far longer than this test: the silent endpoint is listed
      // first, so its lanes are queued first. Each endpoint's share is one slot.
      WEBHOOK_CONCURRENCY: '2',
      WEBHOOK_TIMEOUT_MS: '120000',
      WEBHOOK_ENDPOINTS: JSON.stringify([
        { id: 'silent', url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`, secret: SECRET },
        { id: 'answering', url: `http://127.0.0.1:${receiver.port}/`, secret: SECRET },
      ]),
    });
    try {
      const ours = new Set(rooms.map(({ roomId }) => roomId));
      await until('every room delivered to the answering endpoint', () =>
        rooms.every(({ roomId }) => receiver.unique().some((event) => event.roomId === roomId && event.event === 'new-message')),
        15_000,
      );
      expect(receiver.deliveries.every((delivery) => delivery.verified)).toBe(true);
      expect(receiver.unique().filter((event) => ours.has(event.roomId))).toHaveLength(rooms.length);
      // The silent endpoint had one POST at a time in flight, its share, never both slots.
      expect(mostHeldAtOnce).toBe(1);
    } finally {
      // Its POSTs fail now, so the worker closes without waiting them out.
      silent.close();
      for (const socket of [...held]) socket.destroy();
      await worker.close();
      await receiver.close();
    }
  });

  it('acknowledges a 2xx without reading an endless answer body to its end', async ({ cluster, sql, startWorker }) => {
    const [a] = cluster.pods;
    let posts = 0;
    // Answers 200, then streams its body for as long as the worker reads it.
    const chatty = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        posts += 1;
        res.writeHead(200, { 'content-type': 'text/plain' });
        const chunk = Buffer.alloc(64 * 1024, 'x');
        let open = true;
        res.on('close', () => (open = false));
        const pump = () => {
          while (open && res.write(chunk));
        };
        res.on('drain', pump);
        pump();
      });
    });
    chatty.listen(0, '127.0.0.1');
    await once(chatty, 'listening');
    const { roomId } = await createRoom(a!.url, await makeUser());
    const published = await request(a!.url, 'POST', `/api/server/rooms/${roomId}/messages`, {
      headers: { 'x-api-key': API_KEY },
      body: { sender: { kind: 'bot', id: 'probe', name: '봇' }, type: 'text', content: '안녕' },
    });
    expect(published.status).toBe(201);
    const worker = await startWorker({
      WEBHOOK_POLL_INTERVAL_MS: '200',
      // Far longer than this test: an answer read to its end would be acknowledged only then.
      WEBHOOK_TIMEOUT_MS: '120000',
      WEBHOOK_ENDPOINTS: JSON.stringify([{ id: 'chatty', url: `http://127.0.0.1:${(chatty.address() as AddressInfo).port}/`, secret: SECRET }]),
    });
    try {
      const cursor = async () => {
        const [row] = await sql<{ delivered: number }[]>`
          select delivered_change_seq::int as delivered from webhook_cursors where endpoint_id = 'chatty' and room_id = ${roomId}`;
        return row?.delivered ?? 0;
      };
      const deadline = Date.now() + 15_000;
      while ((await cursor()) < published.body.message.changeSeq && Date.now() < deadline) await sleep(100);
      expect(await cursor()).toBe(published.body.message.changeSeq);
      expect(posts).toBeGreaterThan(0);
    } finally {
      chatty.closeAllConnections();
      chatty.close();
      await worker.close();
    }
  });

  it('moves past changes that can no longer be read (their messages dropped with their day)', async ({ cluster, sql, connect, startWorker }) => {
    const [a] = cluster.pods;
    const owner = await makeUser();
    const room = await createRoom(a!.url, owner);
    const socket = await connect(a!.url, owner.token);
    await emitAck(socket, 'join-room', { roomId: room.roomId });
    for (const content of ['하나', '둘']) await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content });
    // What dropping the messages' day partition does to this room's feed: changes 2 and 3 are gone.
    await sql`delete from messages where room_id = ${room.roomId}`;

    const receiver = await startReceiver();
    await startWorker({
      WEBHOOK_POLL_INTERVAL_MS: '200',
      WEBHOOK_ENDPOINTS: JSON.stringify([{ id: 'late', url: `http://127.0.0.1:${receiver.port}/`, secret: SECRET }]),
    });
    const cursor = async () => {
      const [row] = await sql<{ delivered: number }[]>`
        select delivered_change_seq::int as delivered from webhook_cursors where endpoint_id = 'late' and room_id = ${room.roomId}`;
      return row?.delivered ?? 0;
    };
    const deadline = Date.now() + 15_000;
    while ((await cursor()) < 3 && Date.now() < deadline) await sleep(100);
    expect(await cursor()).toBe(3);
    expect(receiver.unique().filter((event) => event.roomId === room.roomId).map((event) => event.event)).toEqual(['user-joined']);
    await receiver.close();
  });
});
