import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { PRESENCE_HEARTBEAT_MS, type PresenceStore } from '@chat/presence';
import { roomChannel } from '@chat/protocol';
import { roomIdsOf } from './socket-rooms.ts';
import type { ChatNamespace, ChatSocket } from './types.ts';

/** stop() waits this long at most for connect/disconnect transitions still in flight. */
const STOP_WAIT_MS = 2000;

/**
 * A heartbeat rewrites all of the pod's counts in Redis at least every this many beats (about a
 * minute), whatever else happened: insurance against drift nobody saw (a connect script that
 * ran although its caller heard an error). In between it only beats: the connect and disconnect
 * scripts keep the counts, and a rewrite of a pod's 50,000 users every 5 s would be 10,000 HSETs
 * a second per pod on the state Redis.
 */
const BEATS_PER_REWRITE = 12;

/**
 * Live presence (issue: "a member is online while at least one of their sockets is connected
 * to any pod"). This pod counts its own sockets per user, mirrors the counts to Redis with a
 * heartbeat, and announces only the first connect and the last disconnect of a user.
 */
export function createPresenceTracker(deps: {
  store: PresenceStore;
  nsp: ChatNamespace;
  logger: Logger;
  podName: string;
  /**
   * A user's first socket connected or last one closed (for the rooms' occupancy, webhooks);
   * also, once the counts are rewritten, a user whose connect or disconnect failed in Redis.
   */
  onTransition?(userId: string): void;
}) {
  const { store, nsp, logger } = deps;
  // Unique per process: a restarted pod with the same name must not inherit a dead one's counts.
  const podId = `${deps.podName}:${randomBytes(4).toString('hex')}`;
  const localCounts = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  // Transitions whose Redis answer (and announcement) is still to come. At shutdown the last
  // sockets' offline announcements must be published before the Redis clients close: a
  // publish cut off by quit() rejects inside the adapter, where nobody can catch it.
  const inFlight = new Set<Promise<void>>();
  const track = (operation: Promise<void>) => {
    inFlight.add(operation);
    void operation.finally(() => inFlight.delete(operation));
  };

  function announce(socket: ChatSocket, roomIds: Iterable<string>, online: boolean) {
    const { user } = socket.data;
    for (const roomId of roomIds) {
      nsp.to(roomChannel(roomId)).emit('presence', {
        roomId,
        userId: user.id,
        nicknameMask: user.nicknameMask,
        online,
      });
    }
  }

  let beats = 0;
  /** The store's generation at the last answered heartbeat (null before the first). */
  let generation: string | null = null;
  /**
   * The counts in Redis may differ from `localCounts`: the first beat, a connect or disconnect
   * whose script may not have run, a failed rewrite, or Redis having forgotten the pod. The next
   * beat then rewrites them all; the others only beat (O(1) instead of O(users on the pod)).
   */
  let rewriteDue = true;
  let beatsSinceRewrite = 0;
  /** Redis forgot this pod's users: say they are online again once the counts are back. */
  let reannounceDue = false;
  /**
   * Users whose connect or disconnect script failed: whether that made their first socket or
   * took their last is unknown, so no transition was reported, and a user's last disconnect
   * during a Redis blip left their rooms `occupied` (no room-vacated) until their next change.
   * Each is reported once a rewrite has put the counts right (the rooms are looked at again).
   */
  let unsure = new Set<string>();

  async function beat(): Promise<void> {
    const rewrite = rewriteDue || beatsSinceRewrite >= BEATS_PER_REWRITE;
    if (rewrite) rewriteDue = false;
    // Those whose script fails from now on wait for the next rewrite (the failure asks for one).
    const settling = rewrite ? unsure : new Set<string>();
    if (rewrite) unsure = new Set();
    let answer: { podWasMissing: boolean; generation: string };
    try {
      answer = await store.heartbeat(podId, rewrite ? localCounts : null);
    } catch (error) {
      if (rewrite) rewriteDue = true;
      for (const userId of settling) unsure.add(userId);
      logger.warn({ err: error }, 'presence heartbeat failed');
      return;
    }
    for (const userId of settling) deps.onTransition?.(userId);
    beatsSinceRewrite = rewrite ? 0 : beatsSinceRewrite + 1;
    // Redis lost its data, or the worker took this pod for dead (missed heartbeats) and
    // announced its users offline: they are online, so say so again (once per user), once a
    // rewrite has put their counts back. The generation catches it even when the heartbeat that
    // put the pod back was one whose answer was lost (a timeout on our side), and only then: a
    // failed heartbeat alone announces nothing.
    const forgotten = answer.podWasMissing || (generation !== null && answer.generation !== generation);
    if (forgotten && beats > 0) reannounceDue = true;
    generation = answer.generation;
    beats += 1;
    if (forgotten && !rewrite) {
      rewriteDue = true;
      return beat();
    }
    if (rewrite && reannounceDue) {
      reannounceDue = false;
      reannounceAll();
    }
  }

  function reannounceAll() {
    const seen = new Set<string>();
    for (const socket of nsp.sockets.values()) {
      if (!socket.data.user || seen.has(socket.data.user.id)) continue;
      seen.add(socket.data.user.id);
      announce(socket, roomIdsOf(socket), true);
    }
    logger.info({ users: seen.size }, 'presence re-announced after Redis forgot this pod');
  }

  return {
    podId,
    start() {
      void beat();
      timer = setInterval(() => void beat(), PRESENCE_HEARTBEAT_MS);
      timer.unref();
    },

    onConnect(socket: ChatSocket) {
      const userId = socket.data.user.id;
      localCounts.set(userId, (localCounts.get(userId) ?? 0) + 1);
      track(
        store.connect(podId, userId).then(
          ({ online, podWasMissing }) => {
            if (online) {
              announce(socket, roomIdsOf(socket), true);
              deps.onTransition?.(userId);
            }
            // Restore every count now; the heartbeat's generation tells whether to re-announce.
            if (podWasMissing && beats > 0) {
              rewriteDue = true;
              void beat();
            }
          },
          (error: unknown) => {
            // The script may not have run: Redis may lack this socket's count until a rewrite.
            rewriteDue = true;
            unsure.add(userId);
            logger.warn({ err: error, userId }, 'presence connect failed');
          },
        ),
      );
    },

    /** Called on `disconnecting`, while the socket still knows its rooms. */
    onDisconnecting(socket: ChatSocket) {
      const userId = socket.data.user.id;
      const rooms = roomIdsOf(socket);
      const left = (localCounts.get(userId) ?? 1) - 1;
      if (left > 0) localCounts.set(userId, left);
      else localCounts.delete(userId);
      track(
        store.disconnect(podId, userId).then(
          (lastSocket) => {
            if (lastSocket) {
              announce(socket, rooms, false);
              deps.onTransition?.(userId);
            }
          },
          (error: unknown) => {
            rewriteDue = true;
            unsure.add(userId);
            logger.warn({ err: error, userId }, 'presence disconnect failed');
          },
        ),
      );
    },

    /** After the sockets closed: lets their transitions finish (bounded), then leaves Redis. */
    async stop() {
      if (timer) clearInterval(timer);
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...inFlight]),
        new Promise((resolve) => {
          bound = setTimeout(resolve, STOP_WAIT_MS);
        }),
      ]);
      clearTimeout(bound);
      await store.removePod(podId).catch(() => undefined);
    },
  };
}

export type PresenceTracker = ReturnType<typeof createPresenceTracker>;
