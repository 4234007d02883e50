import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { roomChannel, userChannel } from '@chat/protocol';
import { onReconnected } from '../infrastructure/redis-clients.ts';
import type { ChatNamespace } from './types.ts';

export interface PublishGaps {
  /** A broadcast to the room went out; noted if it may not have reached the other pods. */
  roomBroadcast(roomId: string): void;
  /** The user's sockets on every pod were moved into (or out of) the room; noted likewise. */
  membershipMoved(userId: string, roomId: string, joined: boolean): void;
}

/**
 * While this pod cannot reach Redis (its own connection cut, Redis itself fine), its broadcasts
 * reach only its own sockets. ioredis holds the PUBLISHes and sends them on reconnect, but gives
 * them up after `maxRetriesPerRequest` reconnection attempts (about 20 s with our retry
 * strategy); the other pods' subscribers never noticed anything, so nothing else tells their
 * sockets (`resyncAfterResubscribe` covers a pod whose own subscriber was cut). Membership moves
 * (socketsJoin / socketsLeave on the user's sockets on every pod) travel the same way.
 *
 * So the pod notes the rooms it broadcast to and the memberships it moved while its publisher
 * was not ready, and when it is ready again replays the moves (they are idempotent) and tells
 * those rooms, on every pod, to `resync { roomId }`. A publish that did arrive late costs its
 * room one fetch that finds nothing new.
 */
export function trackPublishGaps(options: {
  pub: Redis;
  nsp: ChatNamespace;
  logger: Logger;
  onResync?: (rooms: number) => void;
}): PublishGaps {
  const { pub, nsp, logger } = options;
  let rooms = new Set<string>();
  let moves = new Map<string, { userId: string; roomId: string; joined: boolean }>();

  onReconnected(pub, () => {
    // After ioredis has written what it still holds from the outage (it does so as it turns
    // ready): a late PUBLISH reaches the room before the resync that would fetch it.
    setImmediate(() => {
      const resync = rooms;
      const replay = moves;
      rooms = new Set();
      moves = new Map();
      if (resync.size === 0 && replay.size === 0) return;
      logger.warn({ rooms: resync.size, moves: replay.size }, 'redis publisher back: resyncing rooms broadcast to while it was away');
      for (const { userId, roomId, joined } of replay.values()) {
        const sockets = nsp.in(userChannel(userId));
        if (joined) sockets.socketsJoin(roomChannel(roomId));
        else sockets.socketsLeave(roomChannel(roomId));
      }
      for (const roomId of resync) nsp.to(roomChannel(roomId)).emit('resync', { roomId });
      options.onResync?.(resync.size);
    });
  });

  const away = () => pub.status !== 'ready';
  return {
    roomBroadcast(roomId) {
      if (away()) rooms.add(roomId);
    },
    membershipMoved(userId, roomId, joined) {
      const key = `${userId} ${roomId}`;
      if (away()) moves.set(key, { userId, roomId, joined });
      // A later move that went out supersedes one noted before: replaying that would undo it.
      else moves.delete(key);
    },
  };
}
