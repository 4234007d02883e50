import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { connectRedis, createBusPublisher, type BusClient, type BusTarget, type RedisEndpoint } from '@chat/bus';
import { logErrorsThrottled } from '@chat/runtime';

export interface WorkerRedis {
  /** BullMQ workers: they block on Redis and must wait out an outage. */
  worker: Redis;
  /** Queues and schedulers: fail fast. */
  producer: Redis;
  /** The presence store (state, on REDIS_URL): fails fast. */
  emitter: Redis;
  /** The Socket.IO bus (REDIS_URL's Redis or the bus cluster), for the emitter: fails fast. */
  bus: BusClient;
  close(): Promise<void>;
}

/** `endpoint`: the state Redis (REDIS_URL, or the master of a Sentinel group). */
export function createWorkerRedis(endpoint: RedisEndpoint, bus: BusTarget, logger: Logger): WorkerRedis {
  const retryStrategy = (attempt: number) => Math.min(200 * attempt, 2000);
  const clients = {
    worker: connectRedis(endpoint, { maxRetriesPerRequest: null, retryStrategy }),
    producer: connectRedis(endpoint, { maxRetriesPerRequest: 1, retryStrategy }),
    emitter: connectRedis(endpoint, { maxRetriesPerRequest: 1, retryStrategy }),
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
