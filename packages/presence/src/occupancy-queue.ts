import type { Redis } from 'ioredis';

/** What to look at: a user's rooms (their presence changed) or one room (its membership did). */
export type OccupancySubject = { userId: string } | { roomId: string };

/**
 * Rooms whose occupancy may have changed (webhooks' `room-occupied` / `room-vacated`,
 * docs/webhooks.md), in a sorted set scored by when to look: a presence transition marks the
 * user, a membership change the room, `graceMs` ahead; a later mark pushes the look later, so a
 * reconnect within the grace is looked at once, after it, and changes nothing. One command per
 * transition, never per message.
 *
 * Key: `<p>:occupancy:pending` (zset `u:<userId>` / `r:<roomId>` → due ms since the epoch).
 */
export function createOccupancyQueue(redis: Redis, prefix: string) {
  const key = `${prefix}:occupancy:pending`;
  return {
    async mark(subject: OccupancySubject, graceMs: number): Promise<void> {
      await redis.zadd(key, Date.now() + graceMs, 'userId' in subject ? `u:${subject.userId}` : `r:${subject.roomId}`);
    },

    /** Subjects due now, oldest first, with the score each was read at (for `settle`). */
    async due(max: number): Promise<{ member: string; subject: OccupancySubject; score: number }[]> {
      const flat = await redis.zrangebyscore(key, '-inf', Date.now(), 'WITHSCORES', 'LIMIT', 0, max);
      const entries: { member: string; subject: OccupancySubject; score: number }[] = [];
      for (let index = 0; index + 1 < flat.length; index += 2) {
        const member = flat[index]!;
        const id = member.slice(2);
        entries.push({ member, subject: member.startsWith('u:') ? { userId: id } : { roomId: id }, score: Number(flat[index + 1]) });
      }
      return entries;
    },

    /** Takes the looked-at subjects off, unless marked again since (a later score stays). */
    async settle(entries: readonly { member: string; score: number }[]): Promise<void> {
      for (const entry of entries) {
        await redis.eval(
          "local s = redis.call('zscore', KEYS[1], ARGV[1]) if s and tonumber(s) <= tonumber(ARGV[2]) then redis.call('zrem', KEYS[1], ARGV[1]) end return 0",
          1,
          key,
          entry.member,
          entry.score,
        );
      }
    },
  };
}

export type OccupancyQueue = ReturnType<typeof createOccupancyQueue>;
