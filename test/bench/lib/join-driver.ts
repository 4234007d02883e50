import { performance } from 'node:perf_hooks';
import { Speaker } from './speaker.ts';
import { Samples, type Percentiles } from './stats.ts';

/** A user whose socket issues `join-room`s, and the rooms it has not joined yet. */
export interface Joiner {
  url: string;
  token: string;
  rooms: string[];
}

export interface JoinWindow {
  seconds: number;
  ok: number;
  failed: number;
  /** Joins not made: no room left for any joiner, or `maxOutstanding` acks pending. */
  skipped: number;
  /** join-room → ack (`room-joined` payload), ms. */
  ack: Percentiles;
  firstError: string | null;
}

/**
 * `join-room` at a fixed rate from a few sockets, each joining rooms it is not a member of yet
 * (a join that changes nothing is free by design, so it would measure nothing). Light enough to
 * run in the bench's own process: tens of joins a second.
 */
export class JoinDriver {
  private speakers: Speaker[] = [];
  private next = 0;
  private outstanding = 0;
  private timer: NodeJS.Timeout | null = null;
  private started = 0;
  private windowStart = 0;
  private ok = 0;
  private failed = 0;
  private skipped = 0;
  private ack = new Samples(100_000);
  private firstError: string | null = null;

  constructor(private readonly joiners: Joiner[]) {}

  async open(namespace: string): Promise<void> {
    this.speakers = await Promise.all(
      this.joiners.map((joiner) => Speaker.connect({ url: joiner.url, namespace, auth: { token: joiner.token }, timeoutMs: 30_000 })),
    );
  }

  /** How many joins are left before every joiner is in every room it was given. */
  get remaining(): number {
    return this.joiners.reduce((sum, joiner) => sum + joiner.rooms.length, 0);
  }

  start(ratePerSec: number, maxOutstanding = 100): void {
    this.stopTimer();
    this.started = performance.now();
    this.mark();
    let attempted = 0;
    this.timer = setInterval(() => {
      const target = Math.floor(((performance.now() - this.started) * ratePerSec) / 1000);
      let due = Math.min(target - attempted, 1000);
      attempted = target;
      while (due-- > 0) {
        if (this.outstanding >= maxOutstanding || !this.joinOne()) this.skipped++;
      }
    }, 5);
  }

  private joinOne(): boolean {
    for (let tries = 0; tries < this.joiners.length; tries++) {
      const index = this.next++ % this.joiners.length;
      const joiner = this.joiners[index]!;
      const speaker = this.speakers[index];
      const roomId = joiner.rooms.shift();
      if (!speaker || speaker.closed || !roomId) continue;
      const sentAt = performance.now();
      this.outstanding++;
      speaker.emit('join-room', { roomId }, (args) => {
        this.outstanding--;
        if (args.startsWith('[{"ok":true')) {
          this.ok++;
          this.ack.add(performance.now() - sentAt);
        } else {
          this.failed++;
          this.firstError ??= args.slice(0, 200);
        }
      });
      return true;
    }
    return false;
  }

  /** Starts a measuring window: counters from here on. */
  mark(): void {
    this.windowStart = performance.now();
    this.ok = this.failed = this.skipped = 0;
    this.ack = new Samples(100_000);
    this.firstError = null;
  }

  /** Ends the window and stops issuing joins; waits (bounded) for the acks of those in flight. */
  async stop(drainMs = 3000): Promise<JoinWindow> {
    this.stopTimer();
    const seconds = (performance.now() - this.windowStart) / 1000;
    const deadline = performance.now() + drainMs;
    while (this.outstanding > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    this.outstanding = 0;
    return { seconds, ok: this.ok, failed: this.failed, skipped: this.skipped, ack: this.ack.summary(), firstError: this.firstError };
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  close(): void {
    this.stopTimer();
    for (const speaker of this.speakers) speaker.close();
  }
}
