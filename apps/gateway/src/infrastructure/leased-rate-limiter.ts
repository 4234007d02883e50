import { randomUUID } from 'node:crypto';
import type { StateClient } from '@chat/bus';
import { AppError } from '@chat/protocol';
import { RedisPause } from '../lib/redis-pause.ts';

/**
 * A unit taken for one send: the id of the window it came from, in Redis or, while Redis does
 * not answer, in this pod's memory (`isMemoryUnit`). A refund gives it back to that window and
 * nowhere else: a unit of a window that has ended goes with it, never into the user's next one.
 */
export type SendUnit = string;

/**
 * This pod's clock for leases and windows: only durations are measured here (the moments that
 * matter to other pods are Redis's TIME), and a wall clock stepped back (NTP) would let a pod
 * keep spending units past its lease, or past the end of their window into the next one.
 */
const monotonicNow = (): number => performance.now();

const MEMORY_WINDOW = 'mem:';

/** Whether the in-memory budget gave this unit (Redis windows are named by Redis's TIME). */
export const isMemoryUnit = (unit: SendUnit): boolean => unit.startsWith(MEMORY_WINDOW);

/**
 * The budget that stands in while Redis does not answer: the same fixed windows, per user on
 * this pod alone. Windows that have ended are dropped by `sweep`, so it holds only users who
 * sent while Redis was away, for at most a window.
 */
class MemoryBudget {
  /** `charged`: units of `used` counted into the user's Redis window since (`uncharged`). */
  private readonly windows = new Map<string, { id: string; used: number; charged: number; endsAt: number }>();
  private created = 0;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /** A unit, or how long until the user's window ends. */
  take(userId: string): { unit: SendUnit } | { retryAfterMs: number } {
    const now = monotonicNow();
    let window = this.windows.get(userId);
    if (!window || window.endsAt <= now) {
      window = { id: `${MEMORY_WINDOW}${++this.created}`, used: 0, charged: 0, endsAt: now + this.windowMs };
      this.windows.set(userId, window);
    }
    // A refusal counts nothing: a refund after it gives back a unit that was spent.
    if (window.used >= this.limit) return { retryAfterMs: Math.max(1, window.endsAt - now) };
    window.used += 1;
    return { unit: window.id };
  }

  giveBack(userId: string, unit: SendUnit): void {
    const window = this.windows.get(userId);
    if (window && window.id === unit && window.endsAt > monotonicNow()) window.used = Math.max(0, window.used - 1);
  }

  /** The units spent in the user's live window and not yet counted in Redis, if any. */
  uncharged(userId: string): { id: string; units: number } | null {
    const window = this.windows.get(userId);
    if (!window || window.endsAt <= monotonicNow() || window.used <= window.charged) return null;
    return { id: window.id, units: window.used - window.charged };
  }

  /** Redis counted them: a later lease does not count them again. */
  charged(userId: string, debt: { id: string; units: number }): void {
    const window = this.windows.get(userId);
    if (window?.id === debt.id) window.charged += debt.units;
  }

  sweep(now: number): void {
    for (const [userId, window] of this.windows) if (window.endsAt <= now) this.windows.delete(userId);
  }
}

/** A send budget: one unit per send, or the refusal (RATE_LIMITED with `retryAfterMs`). */
export interface SendRateLimiter {
  /** Takes a unit this pod holds already, synchronously; null when `consume` must ask. */
  tryConsumeLeased(userId: string): SendUnit | null;
  consume(userId: string): Promise<SendUnit>;
  /** Gives `unit` back (a send that stored nothing new should not cost the user). */
  refund(userId: string, unit: SendUnit): Promise<void>;
}

/**
 * Takes units from a user's window: for the sends waiting (`need`) that the units the pod holds
 * already (`held`) do not cover, plus up to `spare` more for the sends to come, but never more
 * than a quarter of what would be left, so that units held by one pod can starve the user's
 * sends on another only in the last quarter of the budget.
 * A window is a hash {n: units taken, w: its id, and per pod holding units `h:<pod>`: until when
 * at the latest it gives back the ones it does not spend} living `window` ms from its first unit
 * (a fixed window, as rate-limiter-flexible's was).
 * `held`: units of window `heldWindow` the asking pod holds already; it serves its waiting sends
 * from them first, and holds what is left over until `hold` ms from now (or nothing: no record).
 * `debt`: units the pod's in-memory budget gave while Redis did not answer, counted into the
 * window first (up to the limit), so that Redis coming back (empty, or missing those sends)
 * buys the user no fresh budget.
 * Returns {units granted, ms until the window ends, window id, ms until the first units held by
 * another pod come back (0: none held elsewhere, or no waiting send goes without a unit)}. The
 * asking pod's own record never counts: what it holds is in `held`, and serves it first.
 */
const LEASE_SCRIPT = `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local need = tonumber(ARGV[3])
local spare = tonumber(ARGV[4])
local hold = tonumber(ARGV[5])
local mine = 'h:' .. ARGV[6]
local held = tonumber(ARGV[7])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = redis.call('PTTL', KEYS[1])
local used, id = 0, nil
local fresh = ttl <= 0
if fresh then
  id = time[1] .. '.' .. time[2]
  ttl = window
  redis.call('DEL', KEYS[1])
else
  local fields = redis.call('HMGET', KEYS[1], 'n', 'w')
  used = tonumber(fields[1]) or 0
  id = fields[2] or ''
end
if ARGV[8] ~= id then held = 0 end
local debt = tonumber(ARGV[9]) or 0
if debt > 0 then
  used = math.min(limit, used + debt)
  redis.call('HSET', KEYS[1], 'n', used, 'w', id)
  if fresh then
    redis.call('PEXPIRE', KEYS[1], window)
    fresh = false
  end
end
local left = limit - used
-- What the pod holds serves first: taking units for sends it can serve would hold them away
-- from the user's other pods for another lease.
local granted = math.min(math.max(0, need - held), left)
if granted > 0 then
  local extra = math.min(spare, math.floor((left - granted) / 4))
  if extra > 0 then granted = granted + extra end
  redis.call('HSET', KEYS[1], 'n', used + granted, 'w', id)
  if fresh then redis.call('PEXPIRE', KEYS[1], window) end
end
local kept = held + granted - math.min(held + granted, need)
if kept > 0 then
  redis.call('HSET', KEYS[1], mine, now + hold)
else
  redis.call('HDEL', KEYS[1], mine)
end
local wait = 0
if held + granted < need then
  local fields = redis.call('HGETALL', KEYS[1])
  for i = 1, #fields, 2 do
    local field = fields[i]
    if field ~= mine and string.sub(field, 1, 2) == 'h:' then
      local untilMs = tonumber(fields[i + 1]) or 0
      if untilMs <= now then
        redis.call('HDEL', KEYS[1], field)
      elseif wait == 0 or untilMs - now < wait then
        wait = untilMs - now
      end
    end
  end
end
return { granted, ttl, id, wait }
`;

/**
 * Gives unspent units back to the window they came from; nothing if that window has ended.
 * With a pod (ARGV[3]), that pod gave back all it held: its record goes.
 */
const RETURN_SCRIPT = `
local fields = redis.call('HMGET', KEYS[1], 'n', 'w')
if fields[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'n', math.max(0, (tonumber(fields[1]) or 0) - tonumber(ARGV[1])))
  if ARGV[3] ~= '' then redis.call('HDEL', KEYS[1], 'h:' .. ARGV[3]) end
end
return 0
`;

interface LeaseCommands {
  chatRateLease(
    key: string,
    limit: number,
    windowMs: number,
    need: number,
    spare: number,
    holdMs: number,
    pod: string,
    held: number,
    heldWindowId: string,
    debt: number,
  ): Promise<[number, number, string, number]>;
  /** `pod`: '' for one unit (a refund), the pod's id when it gives back all it held. */
  chatRateReturn(key: string, units: number, windowId: string, pod: string): Promise<number>;
}

interface Waiter {
  resolve(unit: SendUnit): void;
  reject(error: unknown): void;
}

/** One user's units on this pod. */
interface Lease {
  windowId: string;
  /** Units taken from the window and not yet spent by a send. */
  units: number;
  /** When unspent units go back to the window: never after the window ends. */
  returnAt: number;
  /** When the window ends, at the latest (measured from before the call, so never late). */
  windowEndsAt: number;
  /**
   * How many spare units to ask for: doubles when a lease runs dry before its time, and is set
   * to what the user actually used when unspent units go back.
   */
  spare: number;
  /** Units of the current lease spent so far. */
  spent: number;
  lastAskedAt: number;
  asking: boolean;
  waiting: Waiter[];
}

export interface LeasedRateLimiterOptions {
  redis: StateClient;
  keyPrefix: string;
  perMinute: number;
  /** How long spare units may stay on this pod before they go back (default 3 s). */
  leaseMs?: number;
  /** At most this many spare units per user at once (default 16). */
  maxSpare?: number;
  /** The window; 60 s in production, shorter in tests of its edges. */
  windowMs?: number;
}

/**
 * The send budget (N per minute per user, across pods) without a Redis round trip per send.
 * A pod leases units from the user's window in Redis, one Lua call for every send waiting on
 * it plus a few spare ones for the sends to come, and spends them locally. The limit stays
 * exact: every stored message spent a unit taken atomically from the one window in Redis, so
 * no more than N go through in a window whatever the number of pods. Spare units are asked
 * for only while the user keeps sending (an occasional sender takes exactly one unit per send,
 * as before) and at most a quarter of what is left; a pod gives back the ones it did not spend
 * after `leaseMs`. The price: a user who moves to another pod with units still held on the
 * first one, and reaches the end of the budget within `leaseMs`, can be refused up to those few
 * units early; the refusal's `retryAfterMs` then says when they come back (the first sweep after
 * that pod's lease: the window records, per pod, until when it may hold units). Otherwise a
 * refusal's `retryAfterMs` is the end of the window: the asking pod's own lease never counts,
 * since it asks only when it has no unit left to spend. (Units the other pod spends before they
 * are due back do not come back: a retry then is refused again, with the end of the window.)
 *
 * When Redis cannot answer, an in-memory limiter with the same budget stands in (per pod, so at
 * worst N × pods while Redis is away) rather than refusing every send. The units it gave are
 * counted into the user's Redis window at the next lease that Redis answers, so a Redis that
 * comes back (having lost its data, or just missing those sends) starts no fresh budget.
 */
export class LeasedRateLimiter implements SendRateLimiter {
  private readonly leases = new Map<string, Lease>();
  private readonly commands: LeaseCommands;
  private readonly insurance: MemoryBudget;
  private readonly leaseMs: number;
  private readonly maxSpare: number;
  private readonly windowMs: number;
  private readonly sweepEveryMs: number;
  /** This limiter's name in a window's records of who holds units (`h:<pod>`). */
  private readonly pod = randomUUID();
  private readonly sweeper: NodeJS.Timeout;
  /** After Redis failed to answer, the in-memory budget decides for a while without asking it (lib/redis-pause.ts). */
  private readonly pause = new RedisPause();

  constructor(private readonly options: LeasedRateLimiterOptions) {
    this.leaseMs = options.leaseMs ?? 3000;
    this.maxSpare = options.maxSpare ?? 16;
    this.windowMs = options.windowMs ?? 60_000;
    const redis = options.redis;
    if (!('chatRateLease' in redis)) {
      redis.defineCommand('chatRateLease', { numberOfKeys: 1, lua: LEASE_SCRIPT });
      redis.defineCommand('chatRateReturn', { numberOfKeys: 1, lua: RETURN_SCRIPT });
    }
    this.commands = redis as unknown as LeaseCommands;
    this.insurance = new MemoryBudget(options.perMinute, this.windowMs);
    this.sweepEveryMs = Math.max(50, Math.floor(this.leaseMs / 4));
    this.sweeper = setInterval(() => this.sweep(), this.sweepEveryMs);
    this.sweeper.unref();
  }

  /**
   * Takes a unit of the user's lease held by this pod, if it has one: the unit, and the send is
   * admitted with no promise at all. Null: `consume` (which may ask Redis).
   */
  tryConsumeLeased(userId: string): SendUnit | null {
    const lease = this.leases.get(userId);
    if (!lease || lease.units <= 0 || monotonicNow() >= lease.returnAt) return null;
    lease.units -= 1;
    lease.spent += 1;
    return lease.windowId;
  }

  consume(userId: string): Promise<SendUnit> {
    const held = this.tryConsumeLeased(userId);
    if (held !== null) return Promise.resolve(held);
    const lease = this.leaseOf(userId);
    return new Promise<SendUnit>((resolve, reject) => {
      lease.waiting.push({ resolve, reject });
      if (!lease.asking) this.ask(userId, lease);
    });
  }

  async refund(userId: string, unit: SendUnit): Promise<void> {
    if (isMemoryUnit(unit)) {
      this.insurance.giveBack(userId, unit);
      return;
    }
    const lease = this.leases.get(userId);
    const now = monotonicNow();
    if (lease?.windowId === unit) {
      if (now >= lease.windowEndsAt) return; // the unit's window is over: it went with it
      if (now < lease.returnAt) {
        lease.units += 1;
        lease.spent = Math.max(0, lease.spent - 1);
        return;
      }
    }
    // Not held here any more (or taken in a window this pod has left since): back to Redis, which
    // takes it only while its window is still the user's. Counted into the window the pod holds
    // now instead, a send that stored nothing at the end of one minute would add a unit to the next.
    await this.commands.chatRateReturn(this.key(userId), 1, unit, '').catch(() => undefined);
  }

  /** Gives every unspent unit back (shutdown). */
  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const returns: Promise<unknown>[] = [];
    for (const [userId, lease] of this.leases) {
      if (lease.units > 0 && monotonicNow() < lease.windowEndsAt) returns.push(this.commands.chatRateReturn(this.key(userId), lease.units, lease.windowId, this.pod).catch(() => undefined));
      lease.units = 0;
    }
    await Promise.all(returns);
  }

  private key(userId: string): string {
    return `${this.options.keyPrefix}:${userId}`;
  }

  private leaseOf(userId: string): Lease {
    let lease = this.leases.get(userId);
    if (!lease) {
      lease = { windowId: '', units: 0, returnAt: 0, windowEndsAt: 0, spare: 0, spent: 0, lastAskedAt: -Infinity, asking: false, waiting: [] };
      this.leases.set(userId, lease);
    }
    return lease;
  }

  private ask(userId: string, lease: Lease): void {
    const askedAt = monotonicNow();
    const sinceLast = askedAt - lease.lastAskedAt;
    // Asking again within a lease's life: the user sends faster than the last lease assumed.
    if (sinceLast < this.leaseMs) lease.spare = Math.min(this.maxSpare, Math.max(1, lease.spare * 2));
    // Back after a long pause: start again from one unit per send.
    else if (sinceLast > 10 * this.leaseMs) lease.spare = 0;
    // Otherwise the size the last lease's use set (see sweep).
    lease.lastAskedAt = askedAt;
    const attempt = this.pause.start();
    if (attempt === 'local') {
      this.serveFromMemory(userId, lease);
      return;
    }
    lease.asking = true;
    const need = lease.waiting.length;
    // Units left over here go back at the first sweep after the lease: other pods are told that.
    const holdMs = this.leaseMs + this.sweepEveryMs;
    const held = Math.max(0, lease.units);
    const debt = this.insurance.uncharged(userId);
    this.commands.chatRateLease(this.key(userId), this.options.perMinute, this.windowMs, need, lease.spare, holdMs, this.pod, held, lease.windowId, debt?.units ?? 0).then(
      ([granted, ttl, windowId, heldElsewhereMs]) => {
        lease.asking = false;
        this.pause.answered(attempt);
        if (debt) this.insurance.charged(userId, debt);
        // What the script counted as held: nothing when the window is another one.
        const counted = windowId === lease.windowId ? held : 0;
        if (windowId !== lease.windowId) lease.units = 0; // units of an ended window are void
        lease.windowId = windowId;
        lease.windowEndsAt = askedAt + ttl;
        lease.returnAt = Math.min(askedAt + this.leaseMs, lease.windowEndsAt);
        lease.units += granted;
        const served = lease.waiting.splice(0, Math.min(lease.units, lease.waiting.length));
        lease.units -= served.length;
        lease.spent = served.length;
        for (const waiter of served) waiter.resolve(windowId);
        if (lease.waiting.length === 0) return;
        if (counted + granted >= need) {
          // Sends that arrived during the call and found no spare unit: ask again for them.
          this.ask(userId, lease);
          return;
        }
        // The window is spent: every send still waiting is refused, until units held by another
        // pod come back or else the window ends.
        const retryAfterMs = Math.max(1, heldElsewhereMs > 0 ? Math.min(heldElsewhereMs, ttl) : ttl);
        for (const waiter of lease.waiting.splice(0)) waiter.reject(new AppError('RATE_LIMITED', { retryAfterMs }));
      },
      () => {
        lease.asking = false;
        this.pause.unanswered(attempt);
        this.serveFromMemory(userId, lease);
      },
    );
  }

  /** Redis did not answer, or is not asked for now: the in-memory budget decides for the sends waiting. */
  private serveFromMemory(userId: string, lease: Lease): void {
    for (const waiter of lease.waiting.splice(0)) {
      const taken = this.insurance.take(userId);
      if ('unit' in taken) waiter.resolve(taken.unit);
      else waiter.reject(new AppError('RATE_LIMITED', { retryAfterMs: taken.retryAfterMs }));
    }
  }

  /** Gives back units held past their lease, and forgets users whose window has ended. */
  private sweep(): void {
    const now = monotonicNow();
    this.insurance.sweep(now);
    for (const [userId, lease] of this.leases) {
      if (lease.asking || lease.waiting.length > 0) continue;
      if (lease.units > 0 && now >= lease.returnAt) {
        if (now < lease.windowEndsAt) void this.commands.chatRateReturn(this.key(userId), lease.units, lease.windowId, this.pod).catch(() => undefined);
        lease.units = 0;
        // What the user did use in that lease, beyond the unit its first send needed.
        lease.spare = Math.min(this.maxSpare, Math.max(0, lease.spent - 1));
      }
      if (now >= lease.windowEndsAt && now - lease.lastAskedAt >= this.leaseMs) this.leases.delete(userId);
    }
  }
}
