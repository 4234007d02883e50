import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { StateClient } from '@chat/bus';
import { throttledWarning } from '@chat/runtime';

/**
 * MAX_SOCKETS_PER_USER across the cluster [ext]. Each user has a set in Redis,
 * `<prefix>:sockets:{<userId>}`, of their sockets as `<podId>|<socketId>`, and each pod a
 * liveness key, `<prefix>:sockets-pod:<podId>`, that lapses one lease (SOCKET_LEASE_MS) after
 * the pod last renewed it; a live pod renews it every third of a lease. A handshake reserves a
 * place with one script that drops the places of pods whose key has lapsed, counts, and adds, so
 * concurrent handshakes on any pods can never all pass one count; a place is given back when the
 * handshake fails or the socket disconnects, and the places of a pod that dies without giving
 * them back stop counting within one lease.
 *
 * Liveness is per pod, not per socket: renewing every socket's own lease cost the state Redis one
 * script per connected user every 10 s (7 µs each: 7% of its core at 100,000 users, 70% at a
 * million); now a pod renews one key whatever its number of sockets, and touches its users' sets
 * only to keep them from expiring (once an hour, `USER_SET_TTL_MS`).
 *
 * The reservation reads pods' keys it does not name in KEYS: on a Redis Cluster they must share
 * the users' sets' slot, which `prefix` (the config's `stateKeyPrefix`, hash-tagged there) gives.
 */

// KEYS[1] the user's set; ARGV[1] `<podId>|<socketId>`, ARGV[2] the pods' key prefix, ARGV[3]
// places, ARGV[4] the set's ttl ms. 1: reserved, 0: full. Members written by the earlier
// version of this file (a socket id scored by its lease's end, during a rolling deploy) count
// while their lease runs.
const RESERVE = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local live, mine, alive = 0, false, {}
-- The caller's own pod is alive whatever its key says: after Redis lost its data, or while the
-- key lapsed in a long stall, its places must not be dropped before its next renewal.
alive[string.match(ARGV[1], '^(.*)|')] = true
for i = 1, #members, 2 do
  local member, score = members[i], tonumber(members[i + 1])
  local pod = string.match(member, '^(.*)|')
  local counts
  if member == ARGV[1] then
    mine = true
    counts = true
  elseif pod then
    if alive[pod] == nil then alive[pod] = redis.call('EXISTS', ARGV[2] .. pod) == 1 end
    counts = alive[pod]
  else
    counts = score > now
  end
  if counts then live = live + 1 else redis.call('ZREM', KEYS[1], member) end
end
if not mine and live >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`;

/**
 * How long a user's set outlives the last time a pod touched it. Live pods touch their users'
 * sets every `USER_SET_REFRESH_MS`; a set whose sockets all died with their pods is dropped
 * after this (their places stopped counting long before: the pods' keys lapsed).
 */
const USER_SET_TTL_MS = 3 * 3_600_000;
const USER_SET_REFRESH_MS = 3_600_000;

/** Set refreshes sent in one pipeline at most. */
const REFRESH_BATCH = 500;

type LeaseCommands = StateClient & {
  reserveSocketLease(key: string, member: string, podKeyPrefix: string, places: number, ttlMs: number): Promise<number>;
};

/**
 * 'reserved': a place in Redis. 'local': Redis did not answer, and the socket takes a place
 * counted by this pod alone (below). 'full': no place, the handshake is refused.
 */
export type Reservation = 'reserved' | 'local' | 'full';

export interface SocketLeases {
  /**
   * Takes one of the user's places for this socket. While Redis does not answer, the socket is
   * let in rather than everyone refused, but counted by this pod alone: no user holds more than
   * the cap on one pod then, so an outage of the state Redis lets a user hold at most the cap
   * per pod instead of any number of sockets (each held until its disconnect).
   */
  reserve(userId: string, socketId: string): Promise<Reservation>;
  /** Gives the place back (a failed handshake, a disconnect), whichever kind. Never rejects. */
  release(userId: string, socketId: string): Promise<void>;
  start(): void;
  stop(): void;
}

export function createSocketLeases(deps: {
  redis: StateClient;
  prefix: string;
  places: number;
  leaseMs: number;
  logger: Logger;
  /** Names this process in its members; unique per process (a restarted pod must not inherit a dead one's places). */
  podName: string;
}): SocketLeases {
  const { redis, leaseMs, logger } = deps;
  const podId = `${deps.podName}:${randomBytes(4).toString('hex')}`;
  const podKeyPrefix = `${deps.prefix}:sockets-pod:`;
  const podKey = podKeyPrefix + podId;
  const keyOf = (userId: string) => `${deps.prefix}:sockets:{${userId}}`;
  const memberOf = (socketId: string) => `${podId}|${socketId}`;
  const commands = redis as LeaseCommands;
  if (typeof commands.reserveSocketLease !== 'function') {
    redis.defineCommand('reserveSocketLease', { numberOfKeys: 1, lua: RESERVE });
  }
  const timers: NodeJS.Timeout[] = [];
  /**
   * Every place this pod holds, by user, Redis's and local ones alike: checked and taken in one
   * synchronous step when Redis fails, so concurrent handshakes cannot all pass the count.
   */
  const held = new Map<string, Set<string>>();
  const warnUnavailable = throttledWarning(logger, 'socket lease unavailable: sockets take places counted by this pod alone', 'sockets');
  /**
   * Places this pod holds that may be missing from the users' sets (socket id → user): those
   * taken while Redis did not answer, and all of them when this pod's key was found gone (Redis
   * lost its data, or the key lapsed in a long stall, and with it the places other pods' scripts
   * then dropped). Written back by `reconcile`, so that a user who got sockets in during an
   * outage is not let past the cap after it.
   */
  const unrecorded = new Map<string, string>();
  /**
   * Places given back whose removal did not reach Redis, or may have been overtaken by a write
   * resent after a reconnect (socket id → user): removed again by `reconcile`. Without this a
   * live pod would keep them counted for as long as it lives (its key never lapses).
   */
  const unreleased = new Map<string, string>();
  let reconciling = false;
  /** When a renewal of this pod's key was last answered, and whether one failed since. */
  let confirmedAt = 0;
  let renewalFailed = false;
  const heldBy = (userId: string) => held.get(userId)?.size ?? 0;
  const hold = (userId: string, socketId: string) => {
    const sockets = held.get(userId);
    if (sockets) sockets.add(socketId);
    else held.set(userId, new Set([socketId]));
  };

  /** Gives a place back in Redis now, or at the next `reconcile` if Redis does not take it. */
  const removePlace = (userId: string, socketId: string) =>
    redis.zrem(keyOf(userId), memberOf(socketId)).then(
      () => undefined,
      () => void unreleased.set(socketId, userId),
    );

  /**
   * One command per pod, whatever its number of sockets. Its key found gone means this pod's
   * places may be gone from the users' sets too: all of them are written back.
   */
  async function renewPod(): Promise<void> {
    let previous: string | null;
    try {
      previous = await redis.set(podKey, '1', 'PX', leaseMs, 'GET');
    } catch (error) {
      renewalFailed = true;
      throw error;
    }
    const now = Date.now();
    // Failed renewals over more than a lease: the key may have lapsed unseen, a "gone" answer
    // that came after its timeout (a frozen Redis, a link without a reset) dropped with it.
    const mayHaveLapsed = renewalFailed && now - confirmedAt > leaseMs;
    confirmedAt = now;
    renewalFailed = false;
    if (previous !== null && !mayHaveLapsed) return;
    for (const [userId, sockets] of held) for (const socketId of sockets) unrecorded.set(socketId, userId);
  }

  /**
   * Writes `unrecorded` places to their users' sets, without the cap's check (their sockets are
   * connected already), and removes `unreleased` ones, in pipelines of `REFRESH_BATCH`. A place
   * whose socket closed while its write was on the way is removed again after it.
   */
  async function reconcile(): Promise<void> {
    if (reconciling || (unrecorded.size === 0 && unreleased.size === 0)) return;
    reconciling = true;
    try {
      const removals = [...unreleased];
      for (let start = 0; start < removals.length; start += REFRESH_BATCH) {
        const batch = removals.slice(start, start + REFRESH_BATCH);
        const pipeline = redis.pipeline();
        for (const [socketId, userId] of batch) pipeline.zrem(keyOf(userId), memberOf(socketId));
        const results = await pipeline.exec();
        batch.forEach(([socketId], i) => {
          if (results?.[i]?.[0] === null) unreleased.delete(socketId);
        });
      }
      const places = [...unrecorded];
      for (let start = 0; start < places.length; start += REFRESH_BATCH) {
        const batch = places.slice(start, start + REFRESH_BATCH);
        const pipeline = redis.pipeline();
        for (const [socketId, userId] of batch) {
          pipeline.zadd(keyOf(userId), 0, memberOf(socketId));
          pipeline.pexpire(keyOf(userId), USER_SET_TTL_MS);
        }
        const results = await pipeline.exec().catch(() => null);
        batch.forEach(([socketId, userId], i) => {
          // Closed while its write was on the way: the write may have landed after the removal.
          if (!held.get(userId)?.has(socketId)) void removePlace(userId, socketId);
          else if (results?.[2 * i]?.[0] === null && unrecorded.get(socketId) === userId) unrecorded.delete(socketId);
        });
        if (results === null) return;
      }
    } finally {
      reconciling = false;
    }
  }

  async function refreshUserSets(): Promise<void> {
    const users = [...held.keys()];
    for (let start = 0; start < users.length; start += REFRESH_BATCH) {
      const pipeline = redis.pipeline();
      for (const userId of users.slice(start, start + REFRESH_BATCH)) pipeline.pexpire(keyOf(userId), USER_SET_TTL_MS);
      await pipeline.exec();
    }
  }

  return {
    async reserve(userId, socketId) {
      // This pod's own places are part of the cluster's count: the cap reached here needs no
      // Redis (and holds even while places taken in an outage are not written back yet).
      if (heldBy(userId) >= deps.places) return 'full';
      try {
        const reserved = await commands.reserveSocketLease(keyOf(userId), memberOf(socketId), podKeyPrefix, deps.places, USER_SET_TTL_MS);
        if (reserved !== 1) return 'full';
        // Checked again: concurrent handshakes all passed the check above, and the user's set may
        // lack this pod's places (not written back yet after an outage).
        if (heldBy(userId) >= deps.places) {
          void removePlace(userId, socketId);
          return 'full';
        }
        hold(userId, socketId);
        return 'reserved';
      } catch (error) {
        if (heldBy(userId) >= deps.places) {
          // A timed-out script may have taken the place all the same.
          void removePlace(userId, socketId);
          return 'full';
        }
        hold(userId, socketId);
        unrecorded.set(socketId, userId);
        warnUnavailable(error);
        return 'local';
      }
    },
    async release(userId, socketId) {
      const sockets = held.get(userId);
      if (sockets?.delete(socketId) && sockets.size === 0) held.delete(userId);
      unrecorded.delete(socketId);
      await removePlace(userId, socketId);
    },
    start() {
      // Sent before any reservation of this pod (one connection, in order): its places count
      // from the first handshake on.
      const renew = () =>
        renewPod()
          .then(reconcile)
          .catch((error: unknown) => logger.warn({ err: error }, 'socket lease renewal failed'));
      void renew();
      timers.push(setInterval(() => void renew(), Math.max(100, Math.floor(leaseMs / 3))));
      timers.push(
        setInterval(() => {
          refreshUserSets().catch((error: unknown) => logger.warn({ err: error }, 'socket place sets refresh failed'));
        }, USER_SET_REFRESH_MS),
      );
      for (const timer of timers) timer.unref();
    },
    stop() {
      for (const timer of timers.splice(0)) clearInterval(timer);
    },
  };
}
