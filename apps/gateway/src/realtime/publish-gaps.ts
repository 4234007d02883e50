import type { Logger } from 'pino';
import type { BusClient } from '@chat/bus';
import { roomChannel, userChannel } from '@chat/protocol';
import { onReconnected } from '../infrastructure/redis-clients.ts';
import type { MembershipMoves } from './membership-moves.ts';
import type { ChatNamespace } from './types.ts';

export interface PublishGaps {
  /** A broadcast to the room went out; noted if it may not have reached the other pods. */
  roomBroadcast(roomId: string): void;
  /** The user's sockets on every pod were moved into or out of a room; noted likewise. */
  membershipMoved(userId: string): void;
}

const ROOM_PREFIX = roomChannel('');
const USER_PREFIX = userChannel('');
/** socket.io-adapter's SOCKETS_JOIN and SOCKETS_LEAVE message types. */
const SOCKETS_JOIN = 4;
const SOCKETS_LEAVE = 5;
const BROADCAST = 3;
/** While gaps wait for their channel's master to answer again: first retry, and the slowest. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;

/** What a publish Redis did not take was for: a room's broadcast or a membership move. */
function decodeFailed(message: string | Buffer): { type?: number; data?: { opts?: { rooms?: unknown }; rooms?: unknown } } | null {
  const text = typeof message === 'string' ? message : message[0] === 0x7b ? message.toString() : null;
  if (text === null) return null;
  try {
    return JSON.parse(text) as ReturnType<typeof decodeFailed>;
  } catch {
    return null;
  }
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);

/**
 * While this pod cannot publish to the bus, its broadcasts reach only its own sockets: its own
 * connection cut or silent (Redis itself fine), or on a cluster bus the master of a room's
 * channel (or of the main channel) down. The publisher does not hold a publish for later: one
 * that cannot go at once, or that Redis does not answer within PUBLISH_TIMEOUT_MS, fails
 * (infrastructure/redis-clients.ts), and a cluster rejects those for a dead master; the other
 * pods never noticed anything, so nothing else tells their sockets. Membership moves (socketsJoin / socketsLeave on
 * the user's sockets on every pod) travel the same way, on the main channel.
 *
 * So the pod notes the rooms it broadcast to and the memberships it moved while its publisher
 * was not ready, and every publish the bus reports as not taken; when it can publish again
 * (its publisher ready again, or the channel's master answering) it has the other pods check
 * those users' sockets against the database (membership-reconciler.ts: a replayed move could
 * undo a later one) and tells those rooms, on every pod, to `resync { roomId }`. A publish that did
 * arrive late costs its room one fetch that finds nothing new.
 */
export function trackPublishGaps(options: {
  pub: BusClient;
  /** Where the bus reports each publish Redis did not take. */
  onPublishFailed(listener: (channel: string, message: string | Buffer) => void): void;
  /** The adapter room of a bus channel (`room:<id>`, `user:<id>`), or null. */
  roomOfChannel(channel: string): string | null;
  mainChannel: string;
  nsp: ChatNamespace;
  /** Where a move that missed the bus is announced again once it can go. */
  moves: MembershipMoves;
  logger: Logger;
  onResync?: (rooms: number) => void;
}): PublishGaps {
  const { pub, nsp, logger } = options;
  let rooms = new Set<string>();
  /** Users whose sockets this pod moved without the move reaching the bus. */
  let moves = new Set<string>();
  let retryTimer: NodeJS.Timeout | undefined;
  let retryDelay = RETRY_MIN_MS;

  // The bus channel of a room, from the main channel's name (the adapter's scheme).
  const roomChannelOnBus = (roomId: string) => `${options.mainChannel}${roomChannel(roomId)}#`;

  function flush(ready: { rooms: Set<string>; moves: Set<string> }) {
    if (ready.rooms.size === 0 && ready.moves.size === 0) return;
    logger.warn({ rooms: ready.rooms.size, moves: ready.moves.size }, 'bus publishing back: resyncing rooms broadcast to while it was away');
    for (const userId of ready.moves) options.moves.announce(userId);
    for (const roomId of ready.rooms) nsp.to(roomChannel(roomId)).emit('resync', { roomId });
    options.onResync?.(ready.rooms.size);
  }

  /** The whole publisher came back (standalone bus): everything noted goes now. */
  onReconnected(pub, () => {
    // After ioredis has written what it still holds from the outage (a cluster bus's client
    // queues while it reconnects; it writes them as it turns ready): a late SPUBLISH reaches the
    // room before the resync that would fetch it.
    setImmediate(() => {
      const ready = { rooms, moves };
      rooms = new Set();
      moves = new Set();
      flush(ready);
    });
  });

  /**
   * Gaps from rejected publishes: a cluster's other masters keep the publisher `ready`, so each
   * gap waits until its own channel's master answers (a key of the channel's name hashes to the
   * channel's slot), then goes; the rest try again later.
   */
  async function retry() {
    retryTimer = undefined;
    if (pub.status === 'end') return;
    const answers = new Map<string, Promise<boolean>>();
    const answering = (channel: string) => {
      let answer = answers.get(channel);
      if (!answer) answers.set(channel, (answer = pub.exists(channel).then(() => true, () => false)));
      return answer;
    };
    const ready = { rooms: new Set<string>(), moves: new Set<string>() };
    const mainUp = moves.size > 0 && (await answering(options.mainChannel));
    for (const roomId of [...rooms]) {
      if (await answering(roomChannelOnBus(roomId))) {
        rooms.delete(roomId);
        ready.rooms.add(roomId);
      }
    }
    if (mainUp) {
      ready.moves = moves;
      moves = new Set();
    }
    flush(ready);
    if (rooms.size > 0 || moves.size > 0) {
      retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
      schedule();
    } else {
      retryDelay = RETRY_MIN_MS;
    }
  }

  function schedule() {
    if (retryTimer) return;
    retryTimer = setTimeout(() => void retry(), retryDelay);
    retryTimer.unref();
  }

  options.onPublishFailed((channel, message) => {
    const room = options.roomOfChannel(channel);
    if (room?.startsWith(ROOM_PREFIX)) {
      rooms.add(room.slice(ROOM_PREFIX.length));
    } else if (channel === options.mainChannel) {
      const failed = decodeFailed(message);
      const targets = strings(failed?.data?.opts?.rooms);
      if (failed?.type === SOCKETS_JOIN || failed?.type === SOCKETS_LEAVE) {
        const [target] = targets;
        if (targets.length === 1 && target?.startsWith(USER_PREFIX)) moves.add(target.slice(USER_PREFIX.length));
      } else if (failed?.type === BROADCAST) {
        for (const name of targets.filter((name) => name.startsWith(ROOM_PREFIX))) rooms.add(name.slice(ROOM_PREFIX.length));
      }
    } else {
      return;
    }
    schedule();
  });

  const away = () => pub.status !== 'ready';
  return {
    roomBroadcast(roomId) {
      if (away()) rooms.add(roomId);
    },
    membershipMoved(userId) {
      if (away()) moves.add(userId);
      // A later move that went out was checked by the other pods: they read the latest state.
      else moves.delete(userId);
    },
  };
}
