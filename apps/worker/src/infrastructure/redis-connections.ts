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
  /** The Socket.IO bus (REDIS_URL's Redis or the bus cluster), for the emitter: fails fast. */
  bus: BusClient;
  close(): Promise<void>;
}

/** `state`: the state Redis (REDIS_URL, the master of a Sentinel group, or a Redis Cluster). */
export function createWorkerRedis(state: RedisTarget, bus: BusTarget, logger: Logger): WorkerRedis {
  const retryStrategy = (attempt: number) => Math.min(200 * attempt, 2000);
  const clients = {
    worker: connectState(state, { maxRetriesPerRequest: null, retryStrategy }),
    producer: connectState(state, { maxRetriesPerRequest: 1, retryStrategy }),
    emitter: connectState(state, { maxRetriesPerRequest: 1, retryStrategy }),
    bus: createBusPublisher(bus, { maxRetriesPerRequest: 1, retryStrategy }),
  };
  for (const [name, client] of Object.entries(clients)) logErrorsThrottled(client, `${name}Connection`, logger);
  return {
    ...clients,
    async close() {
      await Promise.allSettled([clients.worker.quit(), clients.producer.quit(), clients.emitter.quit(), clients.bus.quit()]);
    },
  };
}
