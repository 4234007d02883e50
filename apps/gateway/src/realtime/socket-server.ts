import type { Server as HttpServer } from 'node:http';
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import { busChannelPrefix, type BusAdapterKind, type BusClient } from '@chat/bus';
import type { Logger } from 'pino';
import { Server } from 'socket.io';
import { CHAT_NAMESPACE } from '@chat/protocol';
import { createOriginCheck } from './handshake.ts';
import { deliverLocallyFirst } from './local-first-adapter.ts';
import type { ChatNamespace, InterServerEvents, SocketData } from './types.ts';
import type { ClientToServerEvents, ServerToClientEvents } from '@chat/protocol';

/** Frames above this close the offending socket only (PROTOCOL §6). */
export const MAX_FRAME_BYTES = 16 * 1024;

export function createSocketServer(options: {
  httpServer: HttpServer;
  pub: BusClient;
  sub: BusClient;
  /** `sharded` (the product) or `classic` (benchmarks only, standalone bus). */
  busAdapter: BusAdapterKind;
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
      // Sharded pub/sub (Redis ≥ 7): a room's broadcasts go to its own channel, to which a pod
      // subscribes only while it holds a socket in the room (`dynamic`); membership moves and
      // anything else cluster-wide use the namespace's main channel. See subscription-barrier.ts
      // for what the gateway adds to make a join and the broadcasts after it meet.
      adapter:
        options.busAdapter === 'classic'
          ? // PUBLISH/PSUBSCRIBE: every pod hears every room (config refuses it on a cluster bus).
            createAdapter(options.pub, options.sub, { key: busChannelPrefix(options.redisPrefix) })
          : deliverLocallyFirst(
              createShardedAdapter(options.pub, options.sub, {
                subscriptionMode: 'dynamic',
                channelPrefix: busChannelPrefix(options.redisPrefix),
              }),
            ),
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
