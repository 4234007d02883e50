import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { logErrorsThrottled, publishWithoutRejection } from '@chat/runtime';

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

/**
 * Calls `handler` each time the client is ready again after losing its connection (not at the
 * first connect): what went through it meanwhile may not have arrived.
 */
export function onReconnected(client: Redis, handler: () => void): void {
  let lost = false;
  client.on('close', () => {
    lost = true;
  });
  client.on('ready', () => {
    if (!lost) return;
    lost = false;
    handler();
  });
}

export interface RedisClients {
  /** Commands (rate limits, readiness): fails fast while Redis is away, never queues. */
  commands: Redis;
  pub: Redis;
  sub: Redis;
  close(): Promise<void>;
}

/** Each client's errors: logged at most every few seconds, and all counted through `onError`. */
function watch(client: Redis, name: string, logger: Logger, onError?: (client: string) => void): Redis {
  logErrorsThrottled(client, name, logger, onError);
  return client;
}

/** Rate limits and readiness answer in well under a millisecond on a healthy Redis. */
const COMMAND_TIMEOUT_MS = 500;

export function createRedisClients(url: string, logger: Logger, onError?: (client: string) => void): RedisClients {
  const retryStrategy = (attempt: number) => Math.min(100 * attempt, 2000);
  const commands = watch(
    // commandTimeout: a frozen Redis (SIGSTOP, a stalled host) keeps the TCP connection open
    // and answers nothing; without a bound every rate-limit check would hang with it instead
    // of failing over to the in-memory insurance limiter.
    new Redis(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy,
      connectTimeout: 2000,
      commandTimeout: COMMAND_TIMEOUT_MS,
      // Every send-message runs one rate-limit script: pipelined, the scripts of all sends
      // handled in one event-loop turn share one write and one read instead of one each.
      enableAutoPipelining: true,
    }),
    'commands',
    logger,
    onError,
  );
  const pub = watch(new Redis(url, { retryStrategy, connectTimeout: 2000, enableAutoPipelining: true }), 'pub', logger, onError);
  // The Socket.IO adapter fires its PUBLISHes and drops the promises: each one ioredis gives up
  // on (Redis away for ~20 s) would be an unhandled rejection, one error log per broadcast. The
  // loss itself is handled elsewhere (realtime/publish-gaps.ts) and counted here.
  pub.publish = publishWithoutRejection(pub, () => onError?.('pub')) as typeof pub.publish;
  // No auto-pipelining on the subscriber: ioredis defers auto-pipelined commands to the next
  // tick, and its exclusion list misspells PUNSUBSCRIBE, so the adapter's PUNSUBSCRIBE at close
  // could go out after our QUIT and reject, unhandled inside the adapter ("Connection is closed").
  const sub = watch(pub.duplicate({ enableAutoPipelining: false }), 'sub', logger, onError);
  return {
    commands,
    pub,
    sub,
    async close() {
      // Auto-pipelined commands are written on a setImmediate, but QUIT is never pipelined and
      // goes at once: sent first, it strands what this turn queued (the last sockets' presence
      // and typing PUBLISHes), which then reject inside the adapter, where nobody catches them
      // ("Connection is closed"). One turn of the event loop lets them out ahead of it.
      await new Promise<void>((resolve) => setImmediate(resolve));
      await Promise.allSettled([commands.quit(), pub.quit(), sub.quit()]);
      commands.disconnect();
      pub.disconnect();
      sub.disconnect();
    },
  };
}
