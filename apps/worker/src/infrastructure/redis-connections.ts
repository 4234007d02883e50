import { Redis } from 'ioredis';
import type { Logger } from 'pino';

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
  for (const [name, client] of Object.entries(clients)) {
    let last = 0;
    client.on('error', (error: Error) => {
      if (Date.now() - last < 5000) return;
      last = Date.now();
      logger.warn({ err: error, client: `${name}Connection` }, 'redis client error');
    });
  }
  return {
    ...clients,
    async close() {
      await Promise.allSettled([clients.worker.quit(), clients.producer.quit(), clients.emitter.quit()]);
    },
  };
}
