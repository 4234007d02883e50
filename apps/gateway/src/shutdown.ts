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
 * The shutdown order, in one place. `drain`: SIGTERM's first step (readiness off, no new
 * sockets, clients told and closed over the window, in-flight writes finished). `close`:
 * sockets, then HTTP, presence, the last writes, Redis and Postgres, each after what uses it.
 */
export function createShutdown(parts: {
  state: DrainState;
  http: HttpServer;
  realtime: Realtime;
  slowConsumers: { stop(): void };
  writer: MessageWriter;
  redis: RedisClients;
  database: Database;
  logger: Logger;
  drainWindowMs: number;
}): { drain(windowMs?: number): Promise<void>; close(): Promise<void> } {
  const { state, http, realtime, writer, logger } = parts;
  const { io, nsp, presence } = realtime;

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
    await io.close().catch(() => undefined);
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
        await writer.idle();
        await parts.redis.close();
        await parts.database.close();
      })();
      return closed;
    },
  };
}
