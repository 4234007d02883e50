import type { Cluster, Redis } from 'ioredis';

/**
 * Who is online, across pods, in Redis. Each pod keeps a hash `userId → sockets on this pod`
 * and a heartbeat score in a sorted set; a user is online while any live pod counts them.
 * Every transition is decided inside one Lua script, so two pods (or a pod and the worker)
 * can never both announce the same change or miss it.
 *
 * Keys: `<p>:presence:pods` (zset podId → last heartbeat ms), `<p>:presence:pod:<podId>`,
 * `<p>:presence:collected` (list of dead pods the worker has yet to announce),
 * `<p>:presence:epoch` (made anew when Redis lost its data), `<p>:presence:forgets:<podId>`
 * (how many times the worker collected that pod), `<p>:presence:gc-lease` (one GC run at a time).
 */

// KEYS[1] pods zset, KEYS[2] this pod's hash; ARGV[1] userId, ARGV[2] key prefix of pod hashes,
// ARGV[3] this podId. Returns { 1 when the user had no socket on any other pod (now online),
// 1 when the pod itself was missing from the zset (Redis lost it, or the worker collected it) }.
const CONNECT = `
local mine = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local added = redis.call('ZADD', KEYS[1], 'NX', redis.call('TIME')[1] * 1000, ARGV[3])
if mine > 1 then return { 0, added } end
for _, pod in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if pod ~= ARGV[3] then
    local n = tonumber(redis.call('HGET', ARGV[2] .. pod, ARGV[1]) or '0')
    if n > 0 then return { 0, added } end
  end
end
return { 1, added }`;

// Same keys/args. Returns 1 when this was the user's last socket anywhere (now offline).
const DISCONNECT = `
local mine = redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if mine > 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if mine < 0 then return 0 end
for _, pod in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if pod ~= ARGV[3] then
    local n = tonumber(redis.call('HGET', ARGV[2] .. pod, ARGV[1]) or '0')
    if n > 0 then return 0 end
  end
end
return 1`;

/**
 * Values passed to one HSET / HMGET inside a script: Lua's unpack() refuses more than ~8,000.
 * Even, so a slice of user/count pairs holds whole pairs.
 */
const HSET_SLICE = 4000;

// KEYS[1] pods zset, KEYS[2] this pod's hash, KEYS[3] the presence epoch, KEYS[4] this pod's
// forget count; ARGV[1] podId, ARGV[2] '1' to rewrite the counts or '0' to beat only, ARGV[3..]
// user/count pairs. A rewrite replaces the pod's hash with its own truth (self-heals after a
// Redis restart or a connect that never reached Redis). Returns { 1 when the pod was missing
// from the zset, the epoch, the forget count }: the epoch is made anew whenever Redis has lost
// its data, and the worker counts each time it collects the pod, so a change in either since the
// pod's last answered heartbeat means its users may have been forgotten, even if the heartbeat
// that put the pod back was one whose answer never reached it.
// The pairs go to HSET in slices: Lua's unpack() refuses more than ~8,000 values, so one
// HSET of every pair failed for a pod of 4,000 users or more, on every heartbeat.
const HEARTBEAT = `
local added = redis.call('ZADD', KEYS[1], redis.call('TIME')[1] * 1000, ARGV[1])
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  local now = redis.call('TIME')
  epoch = now[1] .. '.' .. now[2]
  redis.call('SET', KEYS[3], epoch)
end
local forgets = redis.call('GET', KEYS[4]) or '0'
redis.call('PEXPIRE', KEYS[4], 86400000)
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[2])
  for i = 3, #ARGV, ${HSET_SLICE} do
    redis.call('HSET', KEYS[2], unpack(ARGV, i, math.min(i + ${HSET_SLICE - 1}, #ARGV)))
  end
  redis.call('PEXPIRE', KEYS[2], 86400000)
end
return { added, epoch, forgets }`;

/** Dead pods waiting to be announced, at most; beyond it the oldest are dropped unannounced. */
const COLLECTED_KEPT = 1000;

// KEYS[1] pods zset, KEYS[2] list of collected pods; ARGV[1] pod hash prefix, ARGV[2] stale-after
// ms, ARGV[3] max pods, ARGV[4] key prefix of the pods' forget counts. Heartbeats and staleness
// both use Redis's clock, so pod clocks never matter. Moves each dead pod out of the live set
// (counting the forget), in the same step deciding which of its users are now offline (no live
// pod counts them), onto the collected list as JSON { podId, lastBeat, users, gone }, where it
// stays until the worker has announced it. Returns how many it moved. The live pods' counts are
// read with one HMGET per pod and slice of users (not one HGET per user and pod: a dead pod of
// 20,000 users among 30 live pods would be 600,000 calls inside one script, Redis blocked).
const COLLECT = `
local now = redis.call('TIME')
local cutoff = now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(ARGV[2])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[3]))
for _, pod in ipairs(dead) do
  local lastBeat = tonumber(redis.call('ZSCORE', KEYS[1], pod))
  redis.call('ZREM', KEYS[1], pod)
  redis.call('INCR', ARGV[4] .. pod)
  redis.call('PEXPIRE', ARGV[4] .. pod, 86400000)
  local users = redis.call('HKEYS', ARGV[1] .. pod)
  redis.call('DEL', ARGV[1] .. pod)
  local live = redis.call('ZRANGE', KEYS[1], 0, -1)
  local online = {}
  for _, other in ipairs(live) do
    for i = 1, #users, ${HSET_SLICE} do
      local counts = redis.call('HMGET', ARGV[1] .. other, unpack(users, i, math.min(i + ${HSET_SLICE - 1}, #users)))
      for k = 1, #counts do
        if tonumber(counts[k] or '0') > 0 then online[i + k - 1] = true end
      end
    end
  end
  local gone = {}
  for i, user in ipairs(users) do
    if not online[i] then table.insert(gone, user) end
  end
  redis.call('RPUSH', KEYS[2], cjson.encode({ podId = pod, lastBeat = lastBeat, users = users, gone = gone }))
end
redis.call('LTRIM', KEYS[2], -${COLLECTED_KEPT}, -1)
return #dead`;

// KEYS[1] the GC lease; ARGV[1] the holder's token. Deletes the lease only if still that holder's.
const RELEASE_IF_OWNER = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

// KEYS[1] the GC lease; ARGV[1] the holder's token, ARGV[2] ttl ms. 1 if still held (and extended).
const RENEW_IF_OWNER = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

// KEYS[1] pods zset; ARGV[1] pod hash prefix, ARGV[2..] userIds. Returns 1/0 per user. One
// HMGET per live pod for all the users, not one HGET per user and pod: a page of 100 members
// costs as many reads as there are pods.
const ONLINE = `
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
local users = { unpack(ARGV, 2) }
local out = {}
for i = 1, #users do out[i] = 0 end
for _, pod in ipairs(live) do
  local counts = redis.call('HMGET', ARGV[1] .. pod, unpack(users))
  for i = 1, #users do
    if out[i] == 0 and tonumber(counts[i] or '0') > 0 then out[i] = 1 end
  end
end
return out`;

/** Users asked about per ONLINE script run. */
const ONLINE_CHUNK = 1000;

/** How often a gateway pod beats (the worker's staleness bound is a few of these). */
export const PRESENCE_HEARTBEAT_MS = 5000;

export interface DeadPod {
  podId: string;
  /** Its last heartbeat, ms since the epoch on Redis's clock: the pod died after it. */
  lastHeartbeatMs: number;
  /** Every user the dead pod counted a socket of. */
  userIds: string[];
  /** Those of them whose last socket was on the dead pod, when it was collected. */
  offlineUserIds: string[];
  /** Hands the pod back to `settleDeadPod` once it has been announced. */
  receipt: string;
}

/** A held GC lease (`leaseAnnouncing`). */
export interface AnnouncingLease {
  /** Extends the lease by its ttl; false when it lapsed and may be another run's now. */
  renew(): Promise<boolean>;
  /** Frees it, unless it already lapsed (then it may be another run's, and stays so). */
  release(): Promise<void>;
}

/** cjson writes an empty Lua table as `{}`. */
const stringsOf = (value: unknown): string[] => (Array.isArray(value) ? value.map(String) : []);

export function createPresenceStore(redis: Redis | Cluster, prefix: string) {
  const podsKey = `${prefix}:presence:pods`;
  const podHashPrefix = `${prefix}:presence:pod:`;
  const collectedKey = `${prefix}:presence:collected`;
  const epochKey = `${prefix}:presence:epoch`;
  const leaseKey = `${prefix}:presence:gc-lease`;
  const forgetsPrefix = `${prefix}:presence:forgets:`;
  const run = (script: string, keys: string[], args: (string | number)[]) =>
    redis.eval(script, keys.length, ...keys, ...args);

  return {
    /**
     * `online`: this was the user's first socket anywhere. `podWasMissing`: Redis had forgotten
     * this pod, which the connect has just put back with this one user's count: the pod's other
     * users are missing until it beats, and its next heartbeat would no longer see it forgotten.
     */
    async connect(podId: string, userId: string): Promise<{ online: boolean; podWasMissing: boolean }> {
      const [online, added] = (await run(CONNECT, [podsKey, podHashPrefix + podId], [userId, podHashPrefix, podId])) as [number, number];
      return { online: online === 1, podWasMissing: added === 1 };
    },

    async disconnect(podId: string, userId: string): Promise<boolean> {
      return (await run(DISCONNECT, [podsKey, podHashPrefix + podId], [userId, podHashPrefix, podId])) === 1;
    },

    /**
     * Beats; with `counts`, also rewrites the pod's counts from them (null: beat only, O(1),
     * for the beats in between: the connect and disconnect scripts keep the counts exact).
     * `podWasMissing`: Redis did not have the pod. `generation` changes whenever Redis lost its
     * data or the worker collected the pod: a pod that sees it differ from its last answered
     * heartbeat's must rewrite its counts and re-announce its users.
     */
    async heartbeat(podId: string, counts: ReadonlyMap<string, number> | null): Promise<{ podWasMissing: boolean; generation: string }> {
      const pairs: (string | number)[] = [];
      if (counts) for (const [userId, count] of counts) if (count > 0) pairs.push(userId, count);
      const [added, epoch, forgets] = (await run(HEARTBEAT, [podsKey, podHashPrefix + podId, epochKey, forgetsPrefix + podId], [podId, counts ? '1' : '0', ...pairs])) as [
        number,
        string,
        string,
      ];
      return { podWasMissing: added === 1, generation: `${epoch}/${forgets}` };
    },

    /** Takes a pod out at shutdown; its users' offline events were sent as sockets closed. */
    async removePod(podId: string): Promise<void> {
      await redis.multi().zrem(podsKey, podId).del(podHashPrefix + podId).exec();
    },

    /**
     * Moves pods whose heartbeat is older than `staleAfterMs` to the collected list; returns how
     * many. They leave that list only through `settleDeadPod`, so an announcement that fails
     * half-way (Postgres away) is made again by the next run rather than lost.
     */
    async collectDeadPods(staleAfterMs: number, maxPods = 50): Promise<number> {
      return Number(await run(COLLECT, [podsKey, collectedKey], [podHashPrefix, staleAfterMs, maxPods, forgetsPrefix]));
    },

    /** The collected pods not yet settled, oldest first. */
    async collectedDeadPods(max = 50): Promise<DeadPod[]> {
      const records = await redis.lrange(collectedKey, 0, max - 1);
      return records.map((receipt) => {
        const parsed = JSON.parse(receipt) as { podId: unknown; lastBeat: unknown; users: unknown; gone: unknown };
        return {
          podId: String(parsed.podId),
          lastHeartbeatMs: Number(parsed.lastBeat),
          userIds: stringsOf(parsed.users),
          offlineUserIds: stringsOf(parsed.gone),
          receipt,
        };
      });
    },

    /**
     * A lease on announcing collected pods, so that two GC runs (two worker replicas, or a run
     * that outlasts its interval) never announce the same pod twice. Resolves to the lease, or
     * null when another run holds it. It lapses by itself `ttlMs` after it was taken or last
     * renewed, so a holder that dies holds the others back no longer than that.
     */
    async leaseAnnouncing(ttlMs: number): Promise<AnnouncingLease | null> {
      const token = `${Date.now()}:${Math.random().toString(36).slice(2)}`;
      if ((await redis.set(leaseKey, token, 'PX', ttlMs, 'NX')) !== 'OK') return null;
      return {
        renew: async () => (await run(RENEW_IF_OWNER, [leaseKey], [token, ttlMs])) === 1,
        release: async () => {
          await run(RELEASE_IF_OWNER, [leaseKey], [token]);
        },
      };
    },

    /** Takes an announced pod off the collected list. */
    async settleDeadPod(pod: Pick<DeadPod, 'receipt'>): Promise<void> {
      await redis.lrem(collectedKey, 1, pod.receipt);
    },

    async onlineUsers(userIds: readonly string[]): Promise<Set<string>> {
      const online = new Set<string>();
      // Chunks well under what Lua's unpack takes (a dead pod's users may be thousands).
      for (let start = 0; start < userIds.length; start += ONLINE_CHUNK) {
        const chunk = userIds.slice(start, start + ONLINE_CHUNK);
        const flags = (await run(ONLINE, [podsKey], [podHashPrefix, ...chunk])) as number[];
        chunk.forEach((userId, index) => flags[index] === 1 && online.add(userId));
      }
      return online;
    },
  };
}

export type PresenceStore = ReturnType<typeof createPresenceStore>;
