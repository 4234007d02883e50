import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { logErrorsThrottled } from '@chat/runtime';

export interface WorkerRedis {
  /** BullMQ workers: they block on Redis and must wait out an outage. */
  worker: Redis;
  /** Queues and schedulers: fail fast. */
  producer: Redis;
  /** The Socket.IO emitter and the presence store: fail fast. */
  emitter: Redis;
  close(): Promise<void>;
}

export function createWorkerRedis(url: string, logger: Logger): WorkerRedis {
  const retryStrategy = (attempt: number) => Math.min(200 * attempt, 2000);
  const clients = {
    worker: new Redis(url, { maxRetriesPerRequest: null, retryStrategy }),
    producer: new Redis(url, { maxRetriesPerRequest: 1, retryStrategy }),
    emitter: new Redis(url, { maxRetriesPerRequest: 1, retryStrategy }),
  };
  for (const [name, client] of Object.entries(clients)) logErrorsThrottled(client, `${name}Connection`, logger);
  return {
    ...clients,
    async close() {
      await Promise.allSettled([clients.worker.quit(), clients.producer.quit(), clients.emitter.quit()]);
    },
  };
}
