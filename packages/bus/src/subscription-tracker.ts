import calculateSlot from 'cluster-key-slot';
import type { BusClient } from './bus-clients.ts';
import { isClusterClient } from './bus-clients.ts';

/**
 * Which of the bus subscriber's SSUBSCRIBEs Redis has confirmed, and when one was lost and made
 * again. The sharded adapter fires `ssubscribe(channel)` on the subscriber when a room appears
 * on the pod and never waits for the answer (8.3.0's `SSUBSCRIBE` in dist/util.js calls
 * ioredis's `ssubscribe` and drops its promise), so nothing tells the pod when the room's
 * broadcasts start reaching it. This wraps the client's
 * `ssubscribe` / `sunsubscribe` — installed before the adapter exists, so it sees every call,
 * the adapter's and ioredis's own re-subscriptions alike — and keeps each channel's state.
 *
 * A confirmed channel is lost when its connection goes: the standalone subscriber closes, or on
 * a cluster the per-shard subscriber of the channel's master ends, or the channel's slot moves
 * to another master. ioredis subscribes again by itself; the tracker also re-issues the
 * SSUBSCRIBE of every lost or failed channel (idempotent at Redis) until Redis confirms it,
 * because on a cluster ioredis re-subscribes on the shard connections without a promise to
 * wait on. Listeners hear `again = true` for such a confirmation: messages may have been missed.
 */
export interface SubscriptionTracker {
  /** Redis has confirmed this client's subscription to the channel and nothing was lost since. */
  isConfirmed(channel: string): boolean;
  /** Resolves true once confirmed, false after `timeoutMs` or when the channel is unsubscribed. */
  whenConfirmed(channel: string, timeoutMs: number): Promise<boolean>;
  /**
   * `again`: the channel had been confirmed, then lost; broadcasts in between went nowhere.
   * `loss` numbers the event that lost it (a connection's close, a master's end): channels
   * lost together carry the same number.
   */
  onConfirmed(listener: (channel: string, again: boolean, loss: number) => void): void;
  /** Stops retrying; pending waiters resolve false. */
  close(): void;
}

interface Entry {
  confirmed: boolean;
  /** Was confirmed, then lost: the next confirmation is a re-subscription. */
  lost: boolean;
  /** Which loss event took it (0: none). */
  loss: number;
  /** Bumped by every SSUBSCRIBE sent for the channel; only the newest answer counts. */
  attempt: number;
  inFlight: boolean;
  /** The master node (cluster) that confirmed it, to know which channels a node's loss takes. */
  owner: string | undefined;
  /** Made by the first `whenConfirmed` that waits: most channels never have one (a pod holds one per user). */
  waiters: Set<(confirmed: boolean) => void> | undefined;
}

type SubscribeMethod = (...args: unknown[]) => Promise<unknown>;

const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 2000;

function channelsOf(args: unknown[]): string[] {
  return args
    .flat()
    .filter((arg): arg is string | Buffer => typeof arg === 'string' || Buffer.isBuffer(arg))
    .map((arg) => arg.toString());
}

export function trackSubscriptions(sub: BusClient, options: { onError?: (error: unknown, channel: string) => void } = {}): SubscriptionTracker {
  const cluster = isClusterClient(sub) ? sub : null;
  const entries = new Map<string, Entry>();
  const listeners: ((channel: string, again: boolean, loss: number) => void)[] = [];
  let losses = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryDelay = RETRY_MIN_MS;
  let retrying = false;
  let closed = false;

  const target = sub as unknown as { ssubscribe: SubscribeMethod; sunsubscribe: SubscribeMethod };
  const originalSubscribe = target.ssubscribe.bind(sub) as SubscribeMethod;
  const originalUnsubscribe = target.sunsubscribe.bind(sub) as SubscribeMethod;

  const ownerOf = (channel: string): string | undefined => cluster?.slots[calculateSlot(channel)]?.[0];

  function settle(entry: Entry, confirmed: boolean) {
    const waiters = entry.waiters;
    if (!waiters) return;
    entry.waiters = undefined;
    for (const resolve of waiters) resolve(confirmed);
  }

  function subscribe(...args: unknown[]): Promise<unknown> {
    const channels = channelsOf(args);
    const result = originalSubscribe(...args);
    for (const channel of channels) {
      let entry = entries.get(channel);
      if (!entry) {
        entry = { confirmed: false, lost: false, loss: 0, attempt: 0, inFlight: false, owner: undefined, waiters: undefined };
        entries.set(channel, entry);
      }
      const current = entry;
      // A fresh SSUBSCRIBE (the adapter's after a SUNSUBSCRIBE that this map has not seen
      // answered, or a re-subscription) is only trusted once answered.
      current.confirmed = false;
      current.inFlight = true;
      const attempt = ++current.attempt;
      result.then(
        () => {
          if (entries.get(channel) !== current || current.attempt !== attempt) return;
          current.inFlight = false;
          current.confirmed = true;
          current.owner = ownerOf(channel);
          const again = current.lost;
          const loss = current.loss;
          current.lost = false;
          current.loss = 0;
          settle(current, true);
          for (const listener of listeners) listener(channel, again, loss);
        },
        (error: unknown) => {
          if (entries.get(channel) !== current || current.attempt !== attempt) return;
          current.inFlight = false;
          options.onError?.(error, channel);
          scheduleRetry();
        },
      );
    }
    return result;
  }

  function unsubscribe(...args: unknown[]): Promise<unknown> {
    const channels = channelsOf(args);
    for (const channel of channels) {
      const entry = entries.get(channel);
      if (!entry) continue;
      entries.delete(channel);
      settle(entry, false);
    }
    const result = originalUnsubscribe(...args);
    // The adapter drops this promise: a SUNSUBSCRIBE queued while Redis is away and given up
    // on by ioredis (after its retries) was an unhandled rejection per room left meanwhile.
    result.catch((error: unknown) => {
      options.onError?.(error, channels.join(' '));
      forgetResubscription(channels.filter((channel) => !entries.has(channel)));
    });
    return result;
  }

  /**
   * A SUNSUBSCRIBE that failed leaves its channel in the list ioredis re-subscribes on its next
   * connection (it takes a channel off only when Redis answers the SUNSUBSCRIBE): the pod would
   * subscribe again to a room it no longer holds and receive its broadcasts until it restarts.
   * Redis itself holds no subscription of a closed connection, so taking the channel off that
   * list is the whole of unsubscribing. (A standalone subscriber's list; a cluster's per-shard
   * subscribers keep theirs elsewhere, and are not reached here.)
   */
  function forgetResubscription(channels: string[]) {
    if (cluster || channels.length === 0) return;
    const client = sub as unknown as Record<'condition' | 'prevCondition', { subscriber?: { del(set: string, channel: string): void } | false } | null | undefined>;
    for (const condition of [client.prevCondition, client.condition]) {
      const subscriber = condition?.subscriber;
      if (subscriber) for (const channel of channels) subscriber.del('ssubscribe', channel);
    }
  }

  target.ssubscribe = subscribe;
  target.sunsubscribe = unsubscribe;

  function markLost(predicate: (channel: string, entry: Entry) => boolean) {
    let any = false;
    const loss = ++losses;
    for (const [channel, entry] of entries) {
      if (!entry.confirmed || !predicate(channel, entry)) continue;
      entry.confirmed = false;
      entry.lost = true;
      entry.loss = loss;
      any = true;
    }
    if (any) scheduleRetry();
  }

  /**
   * Re-issues the SSUBSCRIBE of every channel that is neither confirmed nor awaiting an answer,
   * once its connection can answer: the standalone subscriber ready, or on a cluster the channel's
   * master answering a command on a key of the channel's name (same slot). Sent to a master that
   * is still down, a cluster SSUBSCRIBE would only fail, and each one leaves another copy of the
   * channel in ioredis's list for its next re-subscription.
   */
  async function retry() {
    retryTimer = undefined;
    if (closed || retrying) return;
    retrying = true;
    try {
      const due = [...entries].filter(([, entry]) => !entry.confirmed && !entry.inFlight).map(([channel]) => channel);
      const answers = new Map<string | undefined, Promise<boolean>>();
      const reachable = (channel: string): Promise<boolean> => {
        if (!cluster) return Promise.resolve(sub.status === 'ready');
        const owner = ownerOf(channel);
        let answer = answers.get(owner);
        if (!answer) answers.set(owner, (answer = cluster.exists(channel).then(() => true, () => false)));
        return answer;
      };
      await Promise.all(
        due.map(async (channel) => {
          if (!(await reachable(channel)) || closed) return;
          const entry = entries.get(channel);
          if (!entry || entry.confirmed || entry.inFlight) return;
          // A rejected promise is handled inside subscribe(); this one only avoids an unhandled one.
          subscribe(channel).catch(() => undefined);
        }),
      );
    } finally {
      retrying = false;
    }
    if ([...entries.values()].some((entry) => !entry.confirmed)) {
      retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
      scheduleRetry();
    } else {
      retryDelay = RETRY_MIN_MS;
    }
  }

  function scheduleRetry() {
    if (closed || retryTimer) return;
    retryTimer = setTimeout(() => void retry(), retryDelay);
    retryTimer.unref();
  }

  if (cluster) {
    // A shard's subscriber connection ended (its node died or was restarted): its channels are
    // gone until re-subscribed. The pool's own "-node" (no node key) is about command
    // connections, not subscriptions.
    cluster.on('-node', (_redis: unknown, nodeKey?: string) => {
      if (typeof nodeKey === 'string') markLost((_channel, entry) => entry.owner === nodeKey);
    });
    // After each subscriber reset (topology change, failed subscribers replaced): a channel
    // whose slot now has another master was dropped by the old one (Redis sends SUNSUBSCRIBE
    // when a slot moves away); retry at once rather than at the next tick of the timer.
    cluster.on('subscribersReady', () => {
      markLost((channel, entry) => entry.owner !== ownerOf(channel));
      if (retryTimer) {
        clearTimeout(retryTimer);
        retryTimer = undefined;
      }
      retryDelay = RETRY_MIN_MS;
      void retry();
    });
  } else {
    // The only subscriber connection closed: every channel is gone until ioredis re-subscribes
    // on `ready` (through the wrapper above, so its answers confirm them).
    sub.on('close', () => markLost(() => true));
  }

  return {
    isConfirmed: (channel) => entries.get(channel)?.confirmed === true,
    whenConfirmed(channel, timeoutMs) {
      const entry = entries.get(channel);
      if (!entry) return Promise.resolve(false);
      if (entry.confirmed) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          entry.waiters?.delete(done);
          resolve(false);
        }, timeoutMs);
        const done = (confirmed: boolean) => {
          clearTimeout(timer);
          resolve(confirmed);
        };
        (entry.waiters ??= new Set()).add(done);
      });
    },
    onConfirmed(listener) {
      listeners.push(listener);
    },
    close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      for (const entry of entries.values()) settle(entry, false);
    },
  };
}
