import { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** Waits for a client to be ready, up to `timeoutMs`; a Redis that is down must not block boot. */
export function waitReady(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once('ready', onReady);
  });
}

export interface RedisClients {
  /** Commands (rate limits, readiness): fails fast while Redis is away, never queues. */
  commands: Redis;
  pub: Redis;
  sub: Redis;
  close(): Promise<void>;
}

/** Logs a client's errors at most once every few seconds: an outage is one story, not a flood. */
function watch(client: Redis, name: string, logger: Logger, onError?: (client: string) => void): Redis {
  let lastLogged = 0;
  client.on('error', (error: Error) => {
    onError?.(name);
    const now = Date.now();
    if (now - lastLogged < 5000) return;
    lastLogged = now;
    logger.warn({ err: error, client: name }, 'redis client error');
  });
  return client;
}

export function createRedisClients(url: string, logger: Logger, onError?: (client: string) => void): RedisClients {
  const retryStrategy = (attempt: number) => Math.min(100 * attempt, 2000);
  const commands = watch(
    new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy, connectTimeout: 2000 }),
    'commands',
    logger,
    onError,
  );
  const pub = watch(new Redis(url, { retryStrategy, connectTimeout: 2000, enableAutoPipelining: true }), 'pub', logger, onError);
  const sub = watch(pub.duplicate(), 'sub', logger, onError);
  return {
    commands,
    pub,
    sub,
    async close() {
      await Promise.allSettled([commands.quit(), pub.quit(), sub.quit()]);
      commands.disconnect();
      pub.disconnect();
      sub.disconnect();
    },
  };
}
