/**
 * BARE: a plain Socket.IO process with the gateway's transport settings (websocket only,
 * perMessageDeflate off, namespace /socket) and none of its work: no auth, no database, no
 * adapter. A client names its room in the handshake's auth and is put in it at once (as the
 * gateway does from membership); `send-message` is acknowledged and broadcast to the room
 * with a payload of the same shape as the gateway's `new-message`.
 *
 * With REDIS_URL set it is ADAPTER instead: the same process joined to its peers through
 * `@socket.io/redis-adapter` on the gateways' default bus (sharded pub/sub: one SPUBLISH per
 * broadcast to the room's channel, decoded by the pods subscribed to it), or the classic one
 * (PUBLISH, every peer decoding it) with BUS_ADAPTER=classic. The bench puts each room's members on both processes, so ADAPTER measures
 * what the cluster design costs before any of the gateway's own work.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? 0);
const http = createServer((request, response) => {
  response.writeHead(request.url === '/healthz' ? 200 : 404).end();
});
const redisUrl = process.env.REDIS_URL;
// The same bus as the gateways' default (BUS_ADAPTER, config.ts): sharded pub/sub, a pod
// subscribing to a room's channel while it holds a socket in the room; `classic` on request.
const key = process.env.REDIS_KEY ?? 'bench-adapter:socket.io';
const adapter = !redisUrl
  ? undefined
  : process.env.BUS_ADAPTER === 'classic'
    ? createAdapter(new Redis(redisUrl), new Redis(redisUrl), { key })
    : createShardedAdapter(new Redis(redisUrl), new Redis(redisUrl), { subscriptionMode: 'dynamic', channelPrefix: key });
const io = new Server(http, { transports: ['websocket'], perMessageDeflate: false, maxHttpBufferSize: 16 * 1024, adapter });
io.of('/').use((_socket, next) => next(new Error('namespace /socket')));
const nsp = io.of('/socket');
const seqs = new Map<string, number>();

nsp.on('connection', (socket) => {
  const auth = socket.handshake.auth as Record<string, unknown>;
  if (typeof auth.room === 'string' && auth.room) void socket.join(`room:${auth.room}`);
  socket.on('send-message', (payload: unknown, ack?: unknown) => {
    const body = (payload ?? {}) as Record<string, unknown>;
    const roomId = typeof body.roomId === 'string' ? body.roomId : '';
    const seq = (seqs.get(roomId) ?? 0) + 1;
    seqs.set(roomId, seq);
    const message = {
      messageId: randomUUID(),
      roomId,
      userId: socket.id,
      nicknameMask: 'b***',
      type: 'text',
      content: typeof body.content === 'string' ? body.content : '',
      imageUrl: null,
      createdAt: new Date().toISOString(),
      seq,
      clientMessageId: null,
    };
    nsp.to(`room:${roomId}`).emit('new-message', message);
    if (typeof ack === 'function') ack({ ok: true, data: message });
  });
});

http.listen(port, '127.0.0.1', () => {
  const address = http.address();
  process.stdout.write(`bare listening ${typeof address === 'object' && address ? address.port : port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
