import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  connectState,
  createBusPublisher,
  createBusSubscriber,
  isClusterClient,
  trackSubscriptions,
  type BusClient,
  type BusTarget,
  type RedisTarget,
  type StateClient,
  type SubscriptionTracker,
} from '@chat/bus';
import { logErrorsThrottled } from '@chat/runtime';
import { delayBusSubscribes } from '../lib/bus-fault-hooks.ts';

/** A client with ioredis's connection events: `Redis`, or a `Cluster` on the bus. */
type Connection = Pick<Redis, 'status' | 'once' | 'off' | 'on'> | BusClient;

/**
 * Calls `handler` each time the client is ready again after losing its connection (not at the
 * first connect): what went through it meanwhile may not have arrived.
 */
export function onReconnected(client: Connection, handler: () => void): void {
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
  /** State commands (rate limits, presence, readiness): fail fast, never queue. */
  commands: StateClient;
  /** The bus publisher (the adapter's SPUBLISH): REDIS_URL's Redis or the bus cluster. */
  pub: BusClient;
  /** The bus subscriber (the adapter's SSUBSCRIBE); on a cluster, one connection per master. */
  sub: BusClient;
  /** Which of the subscriber's SSUBSCRIBEs Redis has confirmed, and which were lost and made again. */
  subscriptions: SubscriptionTracker;
  /** Hears every bus publish Redis did not take (after the error is counted). */
  onPublishFailed(listener: (channel: string, message: string | Buffer) => void): void;
  close(): Promise<void>;
}

/** Each client's errors: logged at most every few seconds, and all counted through `onError`. */
function watch<C extends Connection>(client: C, name: string, logger: Logger, onError?: (client: string) => void): C {
  logErrorsThrottled(client as { on(event: 'error', listener: (error: Error) => void): unknown }, name, logger, onError);
  return client;
}

/** Rate limits and readiness answer in well under a millisecond on a healthy Redis. */
const COMMAND_TIMEOUT_MS = 500;

/**
 * A bus publish unanswered this long fails, and goes to the publish gaps (realtime/publish-gaps.ts)
 * like one Redis refused: without a bound, a silent bus (a partition, a Redis pod replaced behind
 * its Service IP: no reset) held every broadcast's promise, and its bytes, for as long as the
 * kernel kept the connection, and nothing told the rooms to resync.
 */
const PUBLISH_TIMEOUT_MS = 2000;

/**
 * A connection with a command out that hears nothing for this long is destroyed and made again
 * (ioredis `socketTimeout`). ioredis keeps a connection whose commands time out, so after a
 * blackhole every state command (presence, rate limits, socket places) and every publish went on
 * the dead connection and timed out, for good, while Redis answered new connections. Also bounds
 * a reconnection to a Redis still silent (its handshake unanswered). None of these connections
 * sends a blocking command.
 */
const SILENT_CONNECTION_MS = 3000;

/**
 * How often the standalone bus subscriber PINGs Redis. It sends nothing otherwise: without a
 * command out, a silent subscriber connection went unnoticed for good, the pod hearing no other
 * pod's broadcasts. A PING unanswered for SILENT_CONNECTION_MS replaces the connection; ioredis
 * subscribes again on the new one and subscription-tracker.ts resyncs the rooms concerned.
 */
const SUBSCRIBER_PING_MS = 1000;

export function createRedisClients(options: {
  /** The state Redis (REDIS_URL, the master of a Sentinel group, or a Redis Cluster). */
  state: RedisTarget;
  bus: BusTarget;
  logger: Logger;
  onError?: (client: string) => void;
  /** Fault injection (tests): hold each SSUBSCRIBE this long. */
  subscribeDelayMs?: number;
}): RedisClients {
  const { state, logger, onError } = options;
  const retryStrategy = (attempt: number) => Math.min(100 * attempt, 2000);
  const commands = watch(
    // commandTimeout: a frozen Redis (SIGSTOP, a stalled host) keeps the TCP connection open
    // and answers nothing; without a bound every rate-limit check would hang with it instead
    // of failing over to the in-memory insurance limiter.
    connectState(state, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy,
      connectTimeout: 2000,
      commandTimeout: COMMAND_TIMEOUT_MS,
      socketTimeout: SILENT_CONNECTION_MS,
      // A command that timed out was given up on by its caller (the rate limit fell back to
      // memory, a presence change left for the next rewrite): sent again later on the new
      // connection, it would apply out of order with what came after it.
      autoResendUnfulfilledCommands: false,
      // Every send-message runs one rate-limit script: pipelined, the scripts of all sends
      // handled in one event-loop turn share one write and one read instead of one each.
      enableAutoPipelining: true,
    }),
    'commands',
    logger,
    onError,
  );
  // sendLater: false, a publish goes now or fails (no offline queue, no resend on the next
  // connection): a silent or reconnecting bus holds at most the SILENT_CONNECTION_MS of
  // broadcasts sent on the dead connection, and every publish that fails is resynced
  // (publish-gaps.ts) rather than also delivered seconds late.
  const pub = watch(
    createBusPublisher(options.bus, {
      retryStrategy,
      connectTimeout: 2000,
      commandTimeout: PUBLISH_TIMEOUT_MS,
      socketTimeout: SILENT_CONNECTION_MS,
      sendLater: false,
    }),
    'pub',
    logger,
    onError,
  );
  // The Socket.IO adapter fires its SPUBLISHes and drops the promises: each one ioredis gives up
  // on (Redis or the channel's master away, or silent) would be an unhandled rejection, one
  // error log per broadcast. Counted here; realtime/publish-gaps.ts resyncs what they carried.
  // (PUBLISH too: the classic adapter's, BUS_ADAPTER=classic.)
  const failureListeners: ((channel: string, message: string | Buffer) => void)[] = [];
  for (const command of ['spublish', 'publish'] as const) {
    const send = pub[command].bind(pub) as (channel: string, message: string | Buffer) => Promise<number>;
    (pub as Record<typeof command, unknown>)[command] = (channel: string, message: string | Buffer) =>
      send(channel, message).catch(() => {
        onError?.('pub');
        for (const listener of failureListeners) listener(channel, message);
        return 0;
      });
  }
  const sub = watch(createBusSubscriber(options.bus, { retryStrategy, connectTimeout: 2000, socketTimeout: SILENT_CONNECTION_MS }), 'sub', logger, onError);
  const stopPinging = pingWhileReady(sub, SUBSCRIBER_PING_MS);
  // Before the tracker, so that it waits for the delayed command's real answer.
  if (options.subscribeDelayMs) delayBusSubscribes(sub, options.subscribeDelayMs);
  // Before the adapter exists: the tracker must see its first SSUBSCRIBEs (the main channel).
  const subscriptions = trackSubscriptions(sub, { onError: () => onError?.('sub') });
  return {
    commands,
    pub,
    sub,
    subscriptions,
    onPublishFailed(listener) {
      failureListeners.push(listener);
    },
    async close() {
      stopPinging();
      subscriptions.close();
      // Auto-pipelined commands are written on a setImmediate, but QUIT is never pipelined and
      // goes at once: sent first, it strands what this turn queued (the last sockets' presence
      // and typing SPUBLISHes), which then reject inside the adapter, where nobody catches them
      // ("Connection is closed"). One turn of the event loop lets them out ahead of it.
      await new Promise<void>((resolve) => setImmediate(resolve));
      // QUIT waits its turn in the offline queue of a client that is not connected: a pod
      // stopped while Redis is away waited ~13 s for ioredis to give up on it.
      await Promise.allSettled([commands, pub, sub].map((client) => (client.status === 'ready' ? client.quit() : undefined)));
      commands.disconnect();
      pub.disconnect();
      sub.disconnect();
    },
  };
}

/**
 * PINGs a standalone client every `everyMs` while it is connected, so that a silent connection
 * has a command out for its `socketTimeout` to notice. A cluster's sharded subscribers are
 * connections of their own that this cannot reach: not done there.
 */
function pingWhileReady(client: BusClient, everyMs: number): () => void {
  if (isClusterClient(client)) return () => undefined;
  const timer = setInterval(() => {
    // One out when its connection is replaced is sent again on the next (the subscriber resends).
    if (client.status === 'ready') client.ping().catch(() => undefined);
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
