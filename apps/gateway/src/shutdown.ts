import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Database } from '@chat/db';
import type { HttpServer } from './http/register-http.ts';
import type { MessageWriter } from './infrastructure/message-writer.ts';
import type { RedisClients } from './infrastructure/redis-clients.ts';
import { drainSockets } from './realtime/drain.ts';
import { dropConnection, queuedBytes } from './realtime/engine-socket.ts';
import type { Realtime } from './realtime/register-realtime.ts';

/** Whether the pod is on its way out: readiness fails and new sockets are refused. */
export function createDrainState() {
  let draining = false;
  return {
    isDraining: () => draining,
    startDraining: () => {
      draining = true;
    },
  };
}

export type DrainState = ReturnType<typeof createDrainState>;

/**
 * How long the HTTP server's close may wait, once the sockets are closed, for the connections
 * still open. Idle keep-alive connections close at once; what is left is a peer that will not
 * finish: a websocket whose client never completes the close handshake (ws waits 30 s for it),
 * a request whose client stopped sending or reading. Waiting for those held the whole shutdown
 * until SHUTDOWN_TIMEOUT_MS ended the process with exit code 1.
 */
const CONNECTION_GRACE_MS = 2000;

/**
 * The shutdown order, in one place. `drain`: SIGTERM's first step (readiness off, no new
 * sockets, clients told and closed over the window, in-flight writes finished). `close`:
 * sockets, then HTTP, presence, occupancy marks, the last writes, Redis and Postgres, each after what uses it.
 */
export function createShutdown(parts: {
  state: DrainState;
  http: HttpServer;
  realtime: Realtime;
  slowConsumers: { stop(): void };
  writer: MessageWriter;
  /** Gives back the send units leased ahead and not spent. */
  sendLimiter: { close(): Promise<void> };
  redis: RedisClients;
  database: Database;
  writerDatabase: Pick<Database, 'close'>;
  logger: Logger;
  drainWindowMs: number;
}): { drain(windowMs?: number): Promise<void>; close(): Promise<void> } {
  const { state, http, realtime, writer, logger } = parts;
  const { io, nsp, presence } = realtime;

  // Every TCP connection, upgraded ones too (Node's own list of HTTP connections drops those).
  const connections = new Set<Socket>();
  // One listener for every connection (it gets the connection as `this`): a closure and a
  // once-wrapper each would cost every idle connection ~0.3 KiB.
  function forget(this: Socket) {
    connections.delete(this);
  }
  http.server.on('connection', (connection: Socket) => {
    connections.add(connection);
    connection.on('close', forget);
  });

  // Fastify's close() waits for open websockets forever; Socket.IO must go first.
  // `local`: a plain disconnectSockets() would travel the adapter and close every pod's sockets.
  http.addHook('preClose', async () => {
    state.startDraining();
    parts.slowConsumers.stop();
    // A graceful close waits for the client to read what is queued for it: one that has stopped
    // reading would hold the shutdown until the heartbeat gives up on it (40 s).
    for (const socket of nsp.sockets.values()) if (queuedBytes(socket) > 0) dropConnection(socket);
    nsp.local.disconnectSockets(true);
    io.local.disconnectSockets(true);
    // io.close() ends with the HTTP server's close, which waits for every connection to end.
    const grace = setTimeout(() => {
      if (connections.size > 0) logger.warn({ connections: connections.size }, 'closing connections still open after the grace');
      for (const connection of connections) connection.destroy();
    }, CONNECTION_GRACE_MS);
    await io.close().catch(() => undefined);
    clearTimeout(grace);
  });

  let closed: Promise<void> | null = null;
  return {
    async drain(windowMs = parts.drainWindowMs) {
      state.startDraining();
      await drainSockets(nsp, windowMs, logger);
      await writer.idle();
    },
    close() {
      closed ??= (async () => {
        await http.close();
        await presence.stop();
        // After presence: the last sockets' transitions have marked their users.
        await realtime.occupancy.close();
        await writer.idle();
        await parts.sendLimiter.close();
        await parts.redis.close();
        await Promise.all([parts.database.close(), parts.writerDatabase.close()]);
      })();
      return closed;
    },
  };
}
