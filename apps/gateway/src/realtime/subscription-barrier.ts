import type { Logger } from 'pino';
import type { SubscriptionTracker } from '@chat/bus';
import { roomIdOfChannel } from './socket-rooms.ts';
import type { ChatNamespace } from './types.ts';

/**
 * With the sharded adapter in `dynamic` mode a pod subscribes to a room's channel when its first
 * socket enters the room, and the adapter does not wait for Redis to confirm it: until it does,
 * broadcasts to the room from other pods pass this pod by. The join itself travels another way
 * (the caller's own pod, or the main channel for a mirrored join), so nothing orders the two
 * (socket.io-redis-adapter #561).
 *
 * The barrier closes that window. What tells a client it is in a room — the handshake's
 * completion for the rooms a socket is put into on connect, `room-joined` and the join ack —
 * waits for `settle()`, i.e. for this pod's subscription to be confirmed; everything published
 * after that reaches the socket, and everything before it was committed before the client heard
 * of the room, so its own catch-up (`?after=`) finds it. A socket put into a room that no local
 * code waits for (a join mirrored from another pod, or a `settle` that gave up on a slow bus) is
 * told `resync { roomId }` once the subscription is confirmed. A subscription lost and made
 * again (Redis restarted, a master failed over, a slot moved) resyncs the rooms it covered;
 * losing the main channel (membership moves) resyncs every local socket, as `resync {}`.
 */
export interface SubscriptionBarrier {
  /**
   * The socket was just put into `rooms` by this pod's own code. Resolves true once this pod's
   * subscriptions to all of them are confirmed, false after the bound (the socket is then
   * resynced for those rooms when they are).
   */
  settle(socketId: string, rooms: readonly string[]): Promise<boolean>;
  /**
   * Before a membership is written: makes this pod hear `room` (a placeholder member in the
   * adapter's room, which subscribes it) and resolves once the subscription is confirmed, or
   * after the bound. Between the write's commit and the member's socket entering the room, a
   * change would otherwise pass this pod by, and nothing would tell the member: its join answer
   * names the feed as of the commit. `release()` once the socket is in the room (or the write failed).
   */
  hold(room: string): Promise<() => void>;
}

export function createSubscriptionBarrier(options: {
  nsp: ChatNamespace;
  tracker: SubscriptionTracker;
  /** The adapter's channel for a room, and the room of a room channel (null for others). */
  channelOf: (room: string) => string;
  roomOf: (channel: string) => string | null;
  mainChannel: string;
  /** How long a handshake or join waits for a subscription before going ahead anyway. */
  timeoutMs: number;
  logger: Logger;
  onResync?: (sockets: number) => void;
  /** The main channel was lost and is subscribed again: the membership moves on it meanwhile are gone. */
  onMainChannelBack?: () => void;
}): SubscriptionBarrier {
  const { nsp, tracker, channelOf } = options;
  const adapter = nsp.adapter;
  /** Sockets put into a room before its subscription was confirmed, no local code waiting for them. */
  const pending = new Map<string, Set<string>>();
  /** Loss events whose re-subscription of the main channel already resynced every local socket. */
  const resyncedLosses = new Set<number>();
  /** Only the latest few matter: a room re-confirmed from an old loss is long done. */
  const RESYNCED_LOSSES_KEPT = 16;
  /** During a bus outage every handshake and join gives up: one warning every few seconds. */
  let lastGaveUpLog = 0;

  const isSocketRoom = (room: string, socketId: string) => room === socketId;
  /**
   * Rooms whose `hold()` gave up, and when: the join's `settle()` right after it does not wait
   * the bound a second time (the socket is resynced when the subscription comes).
   */
  const holdsGaveUp = new Map<string, number>();
  /** Placeholder members of `hold()`: never a socket id (Socket.IO's have no colon). */
  const holders = new Set<string>();
  let lastHolder = 0;

  adapter.on('join-room', (room: string, socketId: string) => {
    if (isSocketRoom(room, socketId) || holders.has(socketId) || tracker.isConfirmed(channelOf(room))) return;
    let sockets = pending.get(room);
    if (!sockets) pending.set(room, (sockets = new Set()));
    sockets.add(socketId);
  });
  adapter.on('leave-room', (room: string, socketId: string) => {
    pending.get(room)?.delete(socketId);
  });
  adapter.on('delete-room', (room: string) => {
    pending.delete(room);
    holdsGaveUp.delete(room);
  });

  function resync(socketIds: Iterable<string>, room: string): number {
    const roomId = roomIdOfChannel(room);
    const payload = roomId === null ? {} : { roomId };
    let told = 0;
    for (const socketId of socketIds) {
      const socket = nsp.sockets.get(socketId);
      if (!socket || !socket.rooms.has(room)) continue;
      socket.emit('resync', payload);
      told += 1;
    }
    return told;
  }

  tracker.onConfirmed((channel, again, loss) => {
    if (channel === options.mainChannel) {
      if (!again) return;
      // Membership moves of the outage are gone: every local socket catches up on everything.
      resyncedLosses.add(loss);
      if (resyncedLosses.size > RESYNCED_LOSSES_KEPT) resyncedLosses.delete(resyncedLosses.values().next().value!);
      options.logger.warn({ sockets: nsp.sockets.size }, 'bus main channel re-subscribed: asking local sockets to resync');
      nsp.local.emit('resync', {});
      options.onResync?.(nsp.sockets.size);
      options.onMainChannelBack?.();
      return;
    }
    const room = options.roomOf(channel);
    if (room === null) return;
    holdsGaveUp.delete(room);
    const waiting = pending.get(room);
    pending.delete(room);
    let told = 0;
    if (again) {
      if (!resyncedLosses.has(loss)) told = resync(adapter.rooms.get(room) ?? [], room);
    } else if (waiting) {
      told = resync(waiting, room);
    }
    if (told > 0) options.onResync?.(told);
  });

  return {
    async settle(socketId, rooms) {
      // This caller tells the client itself once settled: no resync for these, unless it gives up.
      for (const room of rooms) pending.get(room)?.delete(socketId);
      const boundFor = (room: string) => {
        const gaveUpAt = holdsGaveUp.get(room);
        return gaveUpAt !== undefined && Date.now() - gaveUpAt < options.timeoutMs ? 0 : options.timeoutMs;
      };
      const confirmed = await Promise.all(rooms.map((room) => tracker.whenConfirmed(channelOf(room), boundFor(room))));
      let all = true;
      rooms.forEach((room, index) => {
        if (confirmed[index] || tracker.isConfirmed(channelOf(room))) return;
        all = false;
        // Gave up (a slow or absent bus): resync the socket when the subscription comes.
        if (!adapter.rooms.get(room)?.has(socketId)) return;
        let sockets = pending.get(room);
        if (!sockets) pending.set(room, (sockets = new Set()));
        sockets.add(socketId);
      });
      if (!all && Date.now() - lastGaveUpLog > 5000) {
        lastGaveUpLog = Date.now();
        options.logger.warn({ socketId, rooms: rooms.length }, 'bus subscription not confirmed in time; going ahead, the socket resyncs when it is');
      }
      return all;
    },

    async hold(room) {
      const holder = `hold:${++lastHolder}`;
      holders.add(holder);
      // In-memory: the room (and with it the SSUBSCRIBE) exists when this returns.
      void adapter.addAll(holder, new Set([room]));
      const release = () => {
        if (!holders.delete(holder)) return;
        adapter.delAll(holder);
      };
      if (!(await tracker.whenConfirmed(channelOf(room), options.timeoutMs))) holdsGaveUp.set(room, Date.now());
      return release;
    },
  };
}

/**
 * The classic adapter (BUS_ADAPTER=classic, benchmarks only) subscribes once, at boot, to one
 * pattern covering every room: a pod hears a room before any socket enters it.
 */
export const CLASSIC_ADAPTER_BARRIER: SubscriptionBarrier = {
  settle: () => Promise.resolve(true),
  hold: () => Promise.resolve(() => undefined),
};
