import type { Server as HttpServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Server } from 'socket.io';
import { CHAT_NAMESPACE } from '@chat/protocol';
import { createOriginCheck } from './handshake.ts';
import type { ChatNamespace, InterServerEvents, SocketData } from './types.ts';
import type { ClientToServerEvents, ServerToClientEvents } from '@chat/protocol';

/** Frames above this close the offending socket only (PROTOCOL §6). */
export const MAX_FRAME_BYTES = 16 * 1024;

export function createSocketServer(options: {
  httpServer: HttpServer;
  pub: Redis;
  sub: Redis;
  redisPrefix: string;
  corsOrigins: readonly string[];
  logger: Logger;
  /** While true, new connections are refused (the pod is draining). */
  isDraining: () => boolean;
}): { io: Server; nsp: ChatNamespace } {
  const originAllowed = createOriginCheck(options.corsOrigins);
  const io = new Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>(
    options.httpServer,
    {
      transports: ['websocket'],
      // Off, so a broadcast frame is encoded once for all receivers.
      perMessageDeflate: false,
      maxHttpBufferSize: MAX_FRAME_BYTES,
      allowRequest: (request, callback) => {
        if (options.isDraining()) return callback('server draining', false);
        originAllowed(request, callback);
      },
      cors: {
        origin: options.corsOrigins.includes('*') ? true : [...options.corsOrigins],
      },
      pingInterval: 20_000,
      pingTimeout: 20_000,
      connectTimeout: 10_000,
      adapter: createAdapter(options.pub, options.sub, { key: `${options.redisPrefix}:socket.io` }),
    },
  );
  const nsp = io.of(CHAT_NAMESPACE);
  // A Redis outage must not crash the pod: the adapter reports it here and resubscribes.
  nsp.adapter.on('error', (error: unknown) => options.logger.warn({ err: error }, 'redis adapter error'));
  io.of('/').adapter.on('error', (error: unknown) => options.logger.warn({ err: error }, 'redis adapter error'));
  // Nothing lives on the default namespace: refuse it rather than hold idle sockets.
  io.of('/').use((_socket, next) => next(new Error('namespace /socket')));
  return { io, nsp };
}
