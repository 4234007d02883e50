import type { BatchOutcome, MessagesRepository, NewMessage } from '@chat/db';

interface Pending {
  message: NewMessage;
  resolve(outcome: BatchOutcome): void;
  reject(error: unknown): void;
}

export interface BatchObserver {
  committed?(batchSize: number, stored: number, seconds: number): void;
  failed?(error: unknown): void;
}

/**
 * Group commit: the first message is written at once; messages that arrive while that
 * transaction is in flight wait and go together in the next one. No timer, so an idle send
 * costs one commit, and a busy pod costs one transaction per batch instead of per message.
 * Each caller's promise settles only after its batch's COMMIT.
 */
export class MessageWriter {
  private queue: Pending[] = [];
  private flushing = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly messages: MessagesRepository,
    private readonly observer: BatchObserver = {},
    private readonly maxBatch = 500,
  ) {}

  write(message: NewMessage): Promise<BatchOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ message, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /** Resolves once everything queued so far is committed (or failed): used by shutdown. */
  idle(): Promise<void> {
    if (!this.flushing && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      const started = performance.now();
      try {
        const outcomes = await this.messages.insertBatch(batch.map((item) => item.message));
        this.observer.committed?.(batch.length, outcomes.filter((o) => o.status === 'stored').length, (performance.now() - started) / 1000);
        batch.forEach((item, index) => {
          const outcome = outcomes[index];
          if (outcome) item.resolve(outcome);
          else item.reject(new Error('batch returned fewer outcomes than messages'));
        });
      } catch (error) {
        this.observer.failed?.(error);
        for (const item of batch) item.reject(error);
      }
    }
    this.flushing = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
