import type { Logger } from 'pino';
import type { Redis } from 'ioredis';

/**
 * MAX_SOCKETS_PER_USER across the cluster [ext]. Each user has a sorted set in Redis,
 * `<prefix>:sockets:{<userId>}`, of their socket ids scored by when each one's lease runs out
 * (Redis's clock, so pod clocks never matter). A handshake reserves a place with one script that
 * drops lapsed leases, counts, and adds, so concurrent handshakes on any pods can never all pass
 * one count; a place is given back when the handshake fails or the socket disconnects. Every pod
 * renews the leases of its live sockets every third of a lease, so the places of a pod that dies
 * without giving them back lapse within one lease. Each script touches one key, named in KEYS
 * (one hash slot: a Redis Cluster can run it).
 */

// KEYS[1] the user's set; ARGV[1] socket id, ARGV[2] lease ms, ARGV[3] places. 1: reserved, 0: full.
const RESERVE = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
return 1`;

// KEYS[1] the user's set; ARGV[1] lease ms, ARGV[2..] this pod's live socket ids of the user.
// XX: only leases still held are extended. A socket released while its renewal was on the way
// must not come back as a place nobody holds; a socket Redis forgot (a restart, or one let in
// while Redis was away) goes uncounted until it closes, which errs towards letting users in.
const RENEW = `
local t = redis.call('TIME')
local until_ms = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_ms, ARGV[i]) end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1])) end
return 0`;

/** Renewals sent in one pipeline at most. */
const RENEW_BATCH = 500;

type LeaseCommands = Redis & {
  reserveSocketLease(key: string, socketId: string, leaseMs: number, places: number): Promise<number>;
};

export type Reservation = 'reserved' | 'full' | 'unavailable';

export interface SocketLeases {
  /**
   * Takes one of the user's places for this socket. 'unavailable': Redis did not answer; the
   * caller lets the socket in uncounted rather than refuse everyone while Redis is away.
   */
  reserve(userId: string, socketId: string): Promise<Reservation>;
  /** The handshake is over (accepted or not): renewals now follow the connected sockets only. */
  handshakeDone(socketId: string): void;
  /** Gives the place back (a failed handshake, a disconnect). Never rejects. */
  release(userId: string, socketId: string): Promise<void>;
  start(): void;
  stop(): void;
}

export function createSocketLeases(deps: {
  redis: Redis;
  prefix: string;
  places: number;
  leaseMs: number;
  /** The sockets connected to this pod now, by user. */
  connected(): Iterable<{ userId: string; socketId: string }>;
  logger: Logger;
}): SocketLeases {
  const { redis, leaseMs, logger } = deps;
  const keyOf = (userId: string) => `${deps.prefix}:sockets:{${userId}}`;
  const commands = redis as LeaseCommands;
  if (typeof commands.reserveSocketLease !== 'function') {
    redis.defineCommand('reserveSocketLease', { numberOfKeys: 1, lua: RESERVE });
    redis.defineCommand('renewSocketLeases', { numberOfKeys: 1, lua: RENEW });
  }
  // Sockets between their reservation and the end of their handshake: renewed too.
  const pending = new Map<string, string>();
  let timer: NodeJS.Timeout | undefined;

  async function renewAll(): Promise<void> {
    const byUser = new Map<string, string[]>();
    const add = (userId: string, socketId: string) => {
      const ids = byUser.get(userId);
      if (ids) ids.push(socketId);
      else byUser.set(userId, [socketId]);
    };
    for (const { userId, socketId } of deps.connected()) add(userId, socketId);
    for (const [socketId, userId] of pending) add(userId, socketId);
    const users = [...byUser];
    for (let start = 0; start < users.length; start += RENEW_BATCH) {
      const pipeline = redis.pipeline() as ReturnType<Redis['pipeline']> & {
        renewSocketLeases(key: string, leaseMs: number, ...socketIds: string[]): unknown;
      };
      for (const [userId, socketIds] of users.slice(start, start + RENEW_BATCH)) {
        pipeline.renewSocketLeases(keyOf(userId), leaseMs, ...socketIds);
      }
      await pipeline.exec();
    }
  }

  return {
    async reserve(userId, socketId) {
      try {
        const reserved = await commands.reserveSocketLease(keyOf(userId), socketId, leaseMs, deps.places);
        if (reserved !== 1) return 'full';
        pending.set(socketId, userId);
        return 'reserved';
      } catch (error) {
        logger.warn({ err: error, userId }, 'socket lease unavailable: accepting the socket uncounted');
        return 'unavailable';
      }
    },
    handshakeDone(socketId) {
      pending.delete(socketId);
    },
    async release(userId, socketId) {
      pending.delete(socketId);
      // A release that does not reach Redis lapses with its lease.
      await redis.zrem(keyOf(userId), socketId).catch(() => undefined);
    },
    start() {
      timer = setInterval(() => {
        renewAll().catch((error: unknown) => logger.warn({ err: error }, 'socket lease renewal failed'));
      }, Math.max(100, Math.floor(leaseMs / 3)));
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
