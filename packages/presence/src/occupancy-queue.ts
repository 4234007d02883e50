import type { Cluster, Redis } from 'ioredis';

/** ARGV: member, score read, member, score read, … */
const SETTLE = `
for i = 1, #ARGV, 2 do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) <= tonumber(ARGV[i + 1]) then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return 0`;

/** Subjects per settle script: its arguments stay far below what a Redis command takes. */
const SETTLE_CHUNK = 500;

/** What to look at: a user's rooms (their presence changed) or one room (its membership did). */
export type OccupancySubject = { userId: string } | { roomId: string };

/** A subject's member in the queue: one per user and per room. */
export function occupancyMember(subject: OccupancySubject): string {
  return 'userId' in subject ? `u:${subject.userId}` : `r:${subject.roomId}`;
}

/**
 * Rooms whose occupancy may have changed (webhooks' `room-occupied` / `room-vacated`,
 * docs/webhooks.md), in a sorted set scored by when to look: a presence transition marks the
 * user, a membership change the room, `graceMs` ahead; a later mark pushes the look later, so a
 * reconnect within the grace is looked at once, after it, and changes nothing. One command per
 * transition, never per message.
 *
 * Key: `<p>:occupancy:pending` (zset `u:<userId>` / `r:<roomId>` → due ms since the epoch).
 */
export function createOccupancyQueue(redis: Redis | Cluster, prefix: string) {
  const key = `${prefix}:occupancy:pending`;
  return {
    async mark(subject: OccupancySubject, graceMs: number): Promise<void> {
      await redis.zadd(key, Date.now() + graceMs, occupancyMember(subject));
    },

    /** `mark` for many subjects: one ZADD per SETTLE_CHUNK of them (a dead pod's thousands of users). */
    async markMany(subjects: readonly OccupancySubject[], graceMs: number): Promise<void> {
      const due = Date.now() + graceMs;
      for (let start = 0; start < subjects.length; start += SETTLE_CHUNK) {
        await redis.zadd(key, ...subjects.slice(start, start + SETTLE_CHUNK).flatMap((subject) => [due, occupancyMember(subject)]));
      }
    },

    /**
     * Marks made earlier that Redis did not take, each with the due time it had then. Never
     * pulls a look earlier than a mark taken since (ZADD GT): a retry lands after it.
     */
    async markLate(marks: readonly { subject: OccupancySubject; due: number }[]): Promise<void> {
      for (let start = 0; start < marks.length; start += SETTLE_CHUNK) {
        await redis.zadd(key, 'GT', ...marks.slice(start, start + SETTLE_CHUNK).flatMap((mark) => [mark.due, occupancyMember(mark.subject)]));
      }
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

    /**
     * Takes the looked-at subjects off, unless marked again since (a later score stays). One
     * script per SETTLE_CHUNK subjects, where one per subject made a mass reconnect's thousands
     * of marks as many round trips.
     */
    async settle(entries: readonly { member: string; score: number }[]): Promise<void> {
      for (let start = 0; start < entries.length; start += SETTLE_CHUNK) {
        const chunk = entries.slice(start, start + SETTLE_CHUNK);
        await redis.eval(SETTLE, 1, key, ...chunk.flatMap((entry) => [entry.member, String(entry.score)]));
      }
    },
  };
}

export type OccupancyQueue = ReturnType<typeof createOccupancyQueue>;
