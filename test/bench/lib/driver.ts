import { performance } from 'node:perf_hooks';
import { ConnectRefused, Speaker } from './speaker.ts';
import { Samples, type Percentiles } from './stats.ts';

/** One simulated client: where it connects, how it authenticates, which room it sends to. */
export interface ClientSpec {
  url: string;
  auth: Record<string, string> | null;
  /** The room it sends to (it receives whatever its server puts it in); null: never sends. */
  roomId: string | null;
}

export interface OpenResult {
  connected: number;
  failed: number;
  ms: number;
  firstError: string | null;
}

export interface StepResult {
  windowMs: number;
  offeredPerSec: number;
  sent: number;
  acked: number;
  ackFailed: number;
  /** Sends not made because `maxOutstanding` acks were pending: the server could not keep up. */
  skipped: number;
  delivered: number;
  deliveriesPerSec: number;
  ackedPerSec: number;
  /** send→receive, ms, over every delivery in the window. */
  latency: Percentiles;
  /** send→ack, ms. */
  ack: Percentiles;
  errors: Record<string, number>;
  disconnects: number;
  reconnects: number;
}

const NEW_MESSAGE = '["new-message",';
const ERROR_EVENT = '["error",';
const CONTENT = '"content":"b';

/**
 * A group of clients driven together: opens them, sends `send-message` at an offered rate
 * capped by the number of unacknowledged sends (so the generator paces on what the server
 * takes), and counts deliveries, latencies, errors and reconnects in a measuring window.
 */
export class ClientGroup {
  private readonly speakers: (Speaker | null)[] = [];
  private readonly senders: number[] = [];
  private nextSender = 0;
  private outstanding = 0;
  private timer: NodeJS.Timeout | null = null;
  private closing = false;

  // window counters
  private windowStart = performance.now();
  private sent = 0;
  private acked = 0;
  private ackFailed = 0;
  private skipped = 0;
  private delivered = 0;
  private latency = new Samples(1_000_000);
  private ackLatency = new Samples(500_000);
  private errors: Record<string, number> = {};
  private rate = 0;
  private disconnects = 0;
  private reconnects = 0;
  /** Totals since open, for live progress lines. */
  totals = { sent: 0, acked: 0, delivered: 0, disconnects: 0, reconnects: 0, errors: 0 };

  constructor(
    private readonly specs: readonly ClientSpec[],
    private readonly namespace: string,
    private readonly options: { reconnect?: boolean; timeoutMs?: number } = {},
  ) {}

  get size(): number {
    return this.speakers.filter((s) => s !== null && !s.closed).length;
  }

  /** Opens the clients, `concurrency` at a time; stops starting new ones after `deadlineMs`. */
  async open(concurrency = 100, onProgress?: (done: number) => void, deadlineMs = Number.POSITIVE_INFINITY): Promise<OpenResult> {
    const started = performance.now();
    let failed = 0;
    let firstError: string | null = null;
    let next = 0;
    let done = 0;
    const worker = async () => {
      while (next < this.specs.length && performance.now() - started < deadlineMs) {
        const index = next++;
        try {
          this.speakers[index] = await this.connectOne(index);
          const spec = this.specs[index];
          if (spec?.roomId) this.senders.push(index);
        } catch (error) {
          failed++;
          this.speakers[index] = null;
          firstError ??= error instanceof ConnectRefused ? error.reply : String((error as Error).message ?? error);
        }
        done++;
        if (onProgress && done % 500 === 0) onProgress(done);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, this.specs.length) }, worker));
    return { connected: done - failed, failed, ms: performance.now() - started, firstError };
  }

  private connectOne(index: number): Promise<Speaker> {
    const spec = this.specs[index];
    if (!spec) throw new Error('no such client');
    return Speaker.connect({
      url: spec.url,
      namespace: this.namespace,
      auth: spec.auth,
      timeoutMs: this.options.timeoutMs ?? 15_000,
      onFrame: (frame) => this.onFrame(frame),
      onClose: () => this.onClose(index),
    });
  }

  private onClose(index: number): void {
    if (this.closing) return;
    this.disconnects++;
    this.totals.disconnects++;
    if (!this.options.reconnect) return;
    const attempt = (delay: number) => {
      setTimeout(() => {
        if (this.closing) return;
        this.connectOne(index).then(
          (speaker) => {
            this.speakers[index] = speaker;
            this.reconnects++;
            this.totals.reconnects++;
          },
          () => attempt(Math.min(delay * 2, 10_000)),
        );
      }, delay + Math.random() * delay).unref();
    };
    attempt(500);
  }

  private onFrame(frame: string): void {
    const bracket = frame.indexOf('[');
    if (frame.startsWith(NEW_MESSAGE, bracket)) {
      this.delivered++;
      this.totals.delivered++;
      const at = frame.indexOf(CONTENT, bracket);
      if (at > 0) {
        const from = at + CONTENT.length;
        const sentAt = Number(frame.slice(from, frame.indexOf('"', from)));
        if (Number.isFinite(sentAt)) this.latency.add(performance.now() - sentAt);
      }
      return;
    }
    if (frame.startsWith(ERROR_EVENT, bracket)) {
      const match = /"code":"([A-Z_]+)"/.exec(frame);
      const code = match?.[1] ?? 'UNKNOWN';
      this.errors[code] = (this.errors[code] ?? 0) + 1;
      this.totals.errors++;
    }
  }

  /** Starts (or re-rates) sending at `rate` messages/s with at most `maxOutstanding` unacked. */
  start(rate: number, maxOutstanding: number): void {
    this.stopTimer();
    this.rate = rate;
    if (rate <= 0 || this.senders.length === 0) return;
    const begun = performance.now();
    let attempted = 0;
    this.timer = setInterval(() => {
      const target = Math.floor(((performance.now() - begun) * rate) / 1000);
      let due = Math.min(target - attempted, 5000);
      attempted = target;
      while (due > 0) {
        if (this.outstanding >= maxOutstanding) {
          this.skipped += due;
          break;
        }
        due--;
        this.sendOne();
      }
    }, 1);
  }

  private sendOne(): void {
    const index = this.senders[this.nextSender++ % this.senders.length];
    if (index === undefined) return;
    const speaker = this.speakers[index];
    const roomId = this.specs[index]?.roomId;
    if (!speaker || speaker.closed || !roomId) {
      this.skipped++;
      return;
    }
    const sentAt = performance.now();
    this.outstanding++;
    this.sent++;
    this.totals.sent++;
    speaker.emit('send-message', { roomId, type: 'text', content: `b${sentAt.toFixed(3)}` }, (args) => {
      this.outstanding--;
      if (args.startsWith('[{"ok":true')) {
        this.acked++;
        this.totals.acked++;
        this.ackLatency.add(performance.now() - sentAt);
      } else {
        this.ackFailed++;
      }
    });
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Starts a measuring window: counters from here on. */
  mark(): void {
    this.windowStart = performance.now();
    this.sent = this.acked = this.ackFailed = this.skipped = this.delivered = 0;
    this.disconnects = this.reconnects = 0;
    this.latency = new Samples(1_000_000);
    this.ackLatency = new Samples(500_000);
    this.errors = {};
  }

  /** The window so far, without stopping. */
  snapshot(): StepResult {
    const windowMs = performance.now() - this.windowStart;
    const seconds = windowMs / 1000;
    return {
      windowMs,
      offeredPerSec: this.rate,
      sent: this.sent,
      acked: this.acked,
      ackFailed: this.ackFailed,
      skipped: this.skipped,
      delivered: this.delivered,
      deliveriesPerSec: this.delivered / seconds,
      ackedPerSec: this.acked / seconds,
      latency: this.latency.summary(),
      ack: this.ackLatency.summary(),
      errors: { ...this.errors },
      disconnects: this.disconnects,
      reconnects: this.reconnects,
    };
  }

  /** Ends the window and stops sending; waits (bounded) for pending acks to settle. */
  async stop(drainMs = 2000): Promise<StepResult> {
    const result = this.snapshot();
    this.stopTimer();
    const deadline = performance.now() + drainMs;
    while (this.outstanding > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.outstanding = 0; // anything still pending is lost or late: never block the next step on it
    return result;
  }

  /**
   * Each connected client with a room emits `event` `{ roomId }` with an ack (join-room for a
   * load test), `concurrency` at a time; resolves with how many acks said ok.
   */
  async emitToRooms(event: string, concurrency = 200, timeoutMs = 10_000): Promise<{ ok: number; failed: number; firstError: string | null }> {
    let ok = 0;
    let failed = 0;
    let firstError: string | null = null;
    let next = 0;
    const worker = async () => {
      while (next < this.specs.length) {
        const index = next++;
        const speaker = this.speakers[index];
        const roomId = this.specs[index]?.roomId;
        if (!speaker || !roomId) continue;
        const reply = await new Promise<string>((resolve) => {
          const timer = setTimeout(() => resolve('timeout'), timeoutMs);
          speaker.emit(event, { roomId }, (args) => {
            clearTimeout(timer);
            resolve(args);
          });
        });
        if (reply.startsWith('[{"ok":true')) ok++;
        else {
          failed++;
          firstError ??= reply.slice(0, 200);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { ok, failed, firstError };
  }

  close(): void {
    this.closing = true;
    this.stopTimer();
    for (const speaker of this.speakers) speaker?.close();
  }
}
