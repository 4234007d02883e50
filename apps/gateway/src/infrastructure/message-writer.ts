import type { BatchOutcome, MessagesRepository, NewMessage } from '@chat/db';
import { withinDeadline } from '../lib/deadline.ts';
import { RoomWriteRates } from './room-write-rates.ts';

/** The admission of a message admitted before it was queued. */
const ADMITTED: Promise<boolean> = Promise.resolve(true);

/** Messages enough for a batch to go at once, without lingering for more. */
const LINGER_ENOUGH = 8;

/**
 * A batch that neither committed nor failed within the writer's bound: its connection is
 * presumed lost without an error (a client-side hang), and the writer moves on without it.
 */
export class BatchStalledError extends Error {
  constructor(ms: number) {
    super(`group-commit batch unsettled after ${ms} ms`);
    this.name = 'BatchStalledError';
  }
}

/** A batch outcome, or `not-admitted`: the message's admission said no, so it was never written. */
export type WriteOutcome = BatchOutcome | { status: 'not-admitted' };

interface Pending {
  message: NewMessage;
  /** Settled admission: true to write, false to drop; undefined while still pending. */
  admitted: boolean | undefined;
  admission: Promise<boolean>;
  /** performance.now() when it was queued: how long it has waited for a batch. */
  queuedAt: number;
  resolve(outcome: WriteOutcome): void;
  reject(error: unknown): void;
}

export interface BatchObserver {
  committed?(batchSize: number, stored: number, seconds: number): void;
  failed?(error: unknown): void;
  /** A batch stalled (BatchStalledError): its connection is presumed lost; replace it. */
  stalled?(): void;
}

/**
 * Group commit: the first message after a pause is written at the end of the event-loop
 * iteration it arrived in, together with whatever else that iteration read; messages that
 * arrive while that transaction is in flight wait and go together in the next one. No timer,
 * so an idle send costs one commit, and a busy pod costs one transaction per batch instead of
 * per message. Each caller's promise settles only after its batch's COMMIT.
 *
 * Linger (`lingerMs`): at a steady rate of small batches each batch costs both processes far
 * more than its messages do (a statement, a commit and a wake-up for its answer: ~150 µs of
 * gateway CPU and ~400 µs of Postgres CPU per batch against ~25 µs of Postgres per further
 * message, BENCHMARKS.md). So a batch that would go out with fewer than LINGER_ENOUGH messages
 * waits until its oldest message has been queued `lingerMs`, or until LINGER_ENOUGH are
 * queued, whichever comes first, but only when this pod's recent rate makes company likely
 * within that time: a pod sending a message now and then writes each at once, as without
 * linger (waiting would add latency and a timer's wake-up for nothing).
 *
 * A message is queued together with its admission (the rate-limit check), which may still be
 * on its way to Redis (the limiter leases units ahead, so usually it is not): its round trip
 * then overlaps the transaction in flight instead of adding to it. A batch takes only messages whose admission has settled, in arrival
 * order (never one overtaking another), and never writes one whose admission said no.
 */
export class MessageWriter {
  private queue: Pending[] = [];
  private flushing = false;
  private idleWaiters: (() => void)[] = [];
  /** Ends the linger in progress, if any (see the class comment). */
  private endLinger: (() => void) | null = null;

  /** This pod's write rates, when batches choose how they become durable or whether to linger (below). */
  private readonly rates: RoomWriteRates | null;

  constructor(
    private readonly messages: MessagesRepository,
    private readonly observer: BatchObserver = {},
    private readonly options: {
      maxBatch?: number;
      /**
       * 0: unbounded. Should be well past the statement timeout: the server cancels slow
       * statements itself, so a batch still unsettled by then is waiting on a connection that
       * will never answer, and every later send would queue behind it for good.
       */
      stalledAfterMs?: number;
      /**
       * A batch releases its rooms' row locks before its WAL flush (asynchronous commit, then a
       * durability barrier: two queries) when one of its rooms is written by this pod at least
       * this many times a second, or when it holds at least `earlyReleaseBatchSize` messages;
       * the others commit synchronously in one query. The early release is for rooms that
       * several pods write at once: a pod holding a room's lock through its commit and fsync
       * makes every other pod's batch for that room wait behind it. That matters when a room
       * sees a message about that often (hot rooms, issue 17 point 2), and when batches are big:
       * a batch of dozens of messages locks dozens of rooms, the other pods' batches almost
       * always share one of them, and the pods' batches then run one after another (measured:
       * at 6,000 msg/s over 60 rooms, 20-35-message batches committing synchronously fell
       * behind the offered rate). A small batch locks few rooms and the barrier would be
       * most of its cost. 0: every batch releases early.
       */
      earlyReleaseMessagesPerSecond?: number;
      /** See `earlyReleaseMessagesPerSecond`; 0: the batch's size does not decide. */
      earlyReleaseBatchSize?: number;
      /** How long a small batch may wait for more messages (class comment); 0: never. */
      lingerMs?: number;
    } = {},
  ) {
    this.rates = options.earlyReleaseMessagesPerSecond || options.lingerMs ? new RoomWriteRates() : null;
  }

  /**
   * `admission` resolving false (or rejecting) means: do not write it. Without one the message
   * is admitted already (a send whose rate-limit unit this pod held): no promise to settle.
   */
  write(message: NewMessage, admission?: Promise<boolean>): Promise<WriteOutcome> {
    return new Promise((resolve, reject) => {
      this.rates?.record(message.roomId);
      const pending: Pending = { message, admitted: true, admission: ADMITTED, queuedAt: performance.now(), resolve, reject };
      if (admission) {
        pending.admitted = undefined;
        pending.admission = admission.catch(() => false);
        void pending.admission.then((admitted) => {
          pending.admitted = admitted;
        });
      }
      this.queue.push(pending);
      this.endLingerIfEnough();
      if (!this.flushing) {
        // The first batch after a pause starts once this turn's I/O callbacks have all run
        // (setImmediate: the same loop iteration, no timer), so the sends read from every
        // socket in one poll go in one statement instead of the first alone.
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /**
   * Several messages admitted already (the server API's batch publish): queued together before
   * the writer looks at its queue, so they go in one transaction (unless the batch would pass
   * `maxBatch` with what is queued before them). One promise per message, in order.
   */
  writeMany(messages: readonly NewMessage[]): Promise<WriteOutcome>[] {
    const written = messages.map(
      (message) =>
        new Promise<WriteOutcome>((resolve, reject) => {
          this.rates?.record(message.roomId);
          this.queue.push({ message, admitted: true, admission: ADMITTED, queuedAt: performance.now(), resolve, reject });
        }),
    );
    this.endLingerIfEnough();
    if (!this.flushing) void this.flush();
    return written;
  }

  /** Resolves once everything queued so far is committed (or failed): used by shutdown. */
  idle(): Promise<void> {
    if (!this.flushing && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private endLingerIfEnough(): void {
    const end = this.endLinger;
    if (!end || this.queue.length < LINGER_ENOUGH) return;
    this.endLinger = null;
    // At the end of this turn, as a batch after a pause starts: the sends read in the same
    // poll join it, and their admissions (settled in microtasks) are known by then.
    setImmediate(end);
  }

  /**
   * A wait before the batch headed by `head` when it is worth one (class comment), else null.
   * It ends at `lingerMs` after the head was queued or as soon as LINGER_ENOUGH are queued.
   */
  private linger(head: Pending): Promise<void> | null {
    const lingerMs = this.options.lingerMs ?? 0;
    if (lingerMs <= 0 || !this.rates || this.queue.length >= LINGER_ENOUGH) return null;
    const left = lingerMs - (performance.now() - head.queuedAt);
    // Company is likely when the pod's rate brings at least one more message within the linger.
    if (left <= 0 || (this.rates.totalPerSecond() * lingerMs) / 1000 < 1) return null;
    return new Promise((resolve) => {
      // Called by the timer or by endLingerIfEnough, possibly both: only the first counts.
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        if (this.endLinger === end) this.endLinger = null;
        resolve();
      };
      const timer = setTimeout(end, left);
      this.endLinger = end;
    });
  }

  private releasesLocksEarly(batch: readonly Pending[]): boolean {
    const rates = this.rates;
    if (!rates) return true;
    const bySize = this.options.earlyReleaseBatchSize ?? 0;
    if (bySize > 0 && batch.length >= bySize) return true;
    const threshold = this.options.earlyReleaseMessagesPerSecond ?? 0;
    return batch.some((item) => rates.perSecond(item.message.roomId) >= threshold);
  }

  /** The longest run of settled admissions at the head of the queue, at most `maxBatch`. */
  private takeSettled(): Pending[] {
    let count = 0;
    const max = this.options.maxBatch ?? 500;
    while (count < this.queue.length && count < max && this.queue[count]!.admitted !== undefined) count++;
    return this.queue.splice(0, count);
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    let lingeredHead: Pending | null = null;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.admitted === undefined) {
        await head.admission;
        // The flag is set by a reaction registered before this await, so it has run.
        continue;
      }
      // One linger per batch: a timer may end it a fraction of a millisecond before the
      // head's `lingerMs` by performance.now(), which must not start a second one.
      const lingering = head === lingeredHead ? null : this.linger(head);
      if (lingering) {
        lingeredHead = head;
        await lingering;
        continue;
      }
      const settled = this.takeSettled();
      const batch: Pending[] = [];
      for (const item of settled) {
        if (item.admitted) batch.push(item);
        else item.resolve({ status: 'not-admitted' });
      }
      if (batch.length === 0) continue;
      const started = performance.now();
      try {
        const stalledAfterMs = this.options.stalledAfterMs ?? 0;
        const outcomes = await withinDeadline(
          this.messages.insertBatch(
            batch.map((item) => item.message),
            { releaseLocksEarly: this.releasesLocksEarly(batch) },
          ),
          stalledAfterMs,
          () => new BatchStalledError(stalledAfterMs),
        );
        this.observer.committed?.(batch.length, outcomes.filter((o) => o.status === 'stored').length, (performance.now() - started) / 1000);
        batch.forEach((item, index) => {
          const outcome = outcomes[index];
          if (outcome) item.resolve(outcome);
          else item.reject(new Error('batch returned fewer outcomes than messages'));
        });
      } catch (error) {
        if (error instanceof BatchStalledError) this.observer.stalled?.();
        this.observer.failed?.(error);
        for (const item of batch) item.reject(error);
      }
    }
    this.flushing = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
