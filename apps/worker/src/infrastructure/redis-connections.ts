import type { Logger } from 'pino';
import { connectState, createBusPublisher, type BusClient, type BusTarget, type RedisTarget, type StateClient } from '@chat/bus';
import { logErrorsThrottled } from '@chat/runtime';

export interface WorkerRedis {
  /** BullMQ workers: they block on Redis and must wait out an outage. */
  worker: StateClient;
  /** Queues and schedulers: fail fast. */
  producer: StateClient;
  /** The presence store (state, on REDIS_URL): fails fast. */
  emitter: StateClient;
  /** The Socket.IO bus (REDIS_URL's Redis or the bus cluster), for the emitter: fails fast, a silent one too. */
  bus: BusClient;
  close(): Promise<void>;
}

/**
 * A bus publish unanswered this long fails (a healthy Redis answers in well under a
 * millisecond), and its connection is taken for dead and replaced. A blackholed bus (a network
 * partition, a Redis pod gone without a reset) keeps the TCP connection open and answers
 * nothing: without a bound the sweep's `room-expired`, which awaits the bus before emptying the
 * room, held the sweep, and every sweep after it, for as long as the kernel took to give up on
 * the connection; and with only the bound, every publish after the bus came back went on the
 * same dead connection and timed out too. And a publish given up on is never sent afterwards
 * (`sendLater: false`): ioredis would otherwise send it from its offline queue, or again on the
 * next connection, after the sweep had already left the room to be announced by a later sweep,
 * which then announced it a second time.
 */
export const BUS_COMMAND_TIMEOUT_MS = 2000;

/**
 * A state connection with a command out that hears nothing for this long is replaced
 * (`socketTimeout`). A state Redis gone silent (a partition, a pod replaced behind its Service,
 * no reset) left every connection of the worker waiting on it for good, BullMQ's (locks, taking
 * runs) and the job health check's alike, and no job ran again after Redis was back until the
 * kernel gave up on those connections (hours for an idle one). Past BullMQ's longest blocking
 * read (10 s), which the workers' blocking connections inherit from `worker`.
 */
export const STATE_SOCKET_TIMEOUT_MS = 15_000;

/** `state`: the state Redis (REDIS_URL, the master of a Sentinel group, or a Redis Cluster). */
export function createWorkerRedis(state: RedisTarget, bus: BusTarget, logger: Logger): WorkerRedis {
  const retryStrategy = (attempt: number) => Math.min(200 * attempt, 2000);
  const clients = {
    worker: connectState(state, { maxRetriesPerRequest: null, retryStrategy, socketTimeout: STATE_SOCKET_TIMEOUT_MS }),
    producer: connectState(state, { maxRetriesPerRequest: 1, retryStrategy, socketTimeout: STATE_SOCKET_TIMEOUT_MS }),
    emitter: connectState(state, { maxRetriesPerRequest: 1, retryStrategy, socketTimeout: STATE_SOCKET_TIMEOUT_MS }),
    bus: reconnectWhenSilent(createBusPublisher(bus, { maxRetriesPerRequest: 1, retryStrategy, commandTimeout: BUS_COMMAND_TIMEOUT_MS, sendLater: false }), logger),
  };
  for (const [name, client] of Object.entries(clients)) logErrorsThrottled(client, `${name}Connection`, logger);
  return {
    ...clients,
    async close() {
      await Promise.allSettled([clients.worker.quit(), clients.producer.quit(), clients.emitter.quit(), clients.bus.quit()]);
    },
  };
}

/**
 * Replaces the bus connection when a publish times out (ioredis only rejects the command and
 * keeps the connection). At most once per BUS_COMMAND_TIMEOUT_MS, and only a connection that is
 * up: the publishes that timed out together, or one sent on the connection just replaced, do
 * not replace the new one again and again.
 */
function reconnectWhenSilent(bus: BusClient, logger: Logger): BusClient {
  let lastReconnect = 0;
  for (const command of ['spublish', 'publish'] as const) {
    const send = bus[command].bind(bus) as (channel: string, message: string | Buffer) => Promise<number>;
    (bus as Record<typeof command, unknown>)[command] = (channel: string, message: string | Buffer) =>
      send(channel, message).catch((error: unknown) => {
        if (error instanceof Error && error.message === 'Command timed out' && bus.status === 'ready' && Date.now() - lastReconnect >= BUS_COMMAND_TIMEOUT_MS) {
          lastReconnect = Date.now();
          logger.warn({ timeoutMs: BUS_COMMAND_TIMEOUT_MS }, 'bus publish unanswered: the bus connection replaced');
          bus.disconnect(true);
        }
        throw error;
      });
  }
  return bus;
}
