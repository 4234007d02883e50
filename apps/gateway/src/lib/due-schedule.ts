import { setLongTimeout } from './long-timeout.ts';

/**
 * Many items each due at a moment, on ONE timer: items due at the same millisecond share a
 * bucket, the buckets' moments are kept sorted, and the timer is armed for the earliest. An item
 * costs a set entry, where a timer of its own costs a Timeout, its closures and their contexts
 * (about 0.6 KiB: issue 17, memory per idle connection). Never early (long-timeout.ts re-checks
 * the clock); `maxStepMs` as in setLongTimeout. The timer is unref'd.
 */
export class DueSchedule<T> {
  private readonly buckets = new Map<number, Set<T>>();
  /** The buckets' moments, ascending. */
  private readonly moments: number[] = [];
  private cancelTimer: (() => void) | null = null;

  constructor(
    private readonly onDue: (item: T) => void,
    private readonly options: { maxStepMs?: number } = {},
  ) {}

  /** `item` is due at `dueAtMs` (ms since the epoch). An item is added once, at one moment. */
  add(item: T, dueAtMs: number): void {
    let bucket = this.buckets.get(dueAtMs);
    if (!bucket) {
      this.buckets.set(dueAtMs, (bucket = new Set()));
      const at = insertionPoint(this.moments, dueAtMs);
      this.moments.splice(at, 0, dueAtMs);
      if (at === 0) this.arm();
    }
    bucket.add(item);
  }

  /** Forgets `item` (added with this `dueAtMs`); nothing if it was already due or never added. */
  remove(item: T, dueAtMs: number): void {
    const bucket = this.buckets.get(dueAtMs);
    if (!bucket?.delete(item) || bucket.size > 0) return;
    this.buckets.delete(dueAtMs);
    const at = insertionPoint(this.moments, dueAtMs);
    this.moments.splice(at, 1);
    if (at === 0) this.arm();
  }

  /** Items waiting (for tests and metrics). */
  get size(): number {
    let size = 0;
    for (const bucket of this.buckets.values()) size += bucket.size;
    return size;
  }

  private arm(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
    const next = this.moments[0];
    if (next !== undefined) this.cancelTimer = setLongTimeout(() => this.fire(), next - Date.now(), this.options);
  }

  private fire(): void {
    this.cancelTimer = null;
    const now = Date.now();
    while (this.moments.length > 0 && this.moments[0]! <= now) {
      const moment = this.moments.shift()!;
      const bucket = this.buckets.get(moment)!;
      // Out of the map first: an `onDue` that removes its item (a socket closing) finds nothing to do.
      this.buckets.delete(moment);
      for (const item of bucket) this.onDue(item);
    }
    this.arm();
  }
}

/** Where `value` is, or would go, in ascending `sorted`. */
function insertionPoint(sorted: readonly number[], value: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle]! < value) low = middle + 1;
    else high = middle;
  }
  return low;
}
