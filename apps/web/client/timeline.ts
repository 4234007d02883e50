import type { NewMessagePayload } from '@chat/protocol';

/**
 * What the page keeps of a message: the common part of `new-message` and a history row,
 * derived from the protocol's type so the two cannot drift.
 */
export type TimelineMessage = Omit<NewMessagePayload, 'clientMessageId' | 'changeSeq' | 'sender'>;

/**
 * One room's messages, keyed by messageId, so the same message from a broadcast, an ack, a
 * history page and a catch-up is shown once. No DOM here (unit-tested in apps/web/test).
 *
 * Missed messages are noticed and fetched by `changeSeq` (room-changes.ts, PROTOCOL §16), not
 * by `seq` here: every message is a change of the feed, so the feed's gaps cover them, and
 * deletes too. The oldest anchor may point at a deleted message: the server still finds it.
 */
export class Timeline {
  private readonly messages = new Map<string, TimelineMessage>();
  private readonly deleted = new Set<string>();
  /** The newest seq of the pages that reached the newest message on the server. */
  private complete: number | null = null;
  private oldest: { messageId: string; seq: number } | null = null;
  /** The first history page has been merged (until then there is nothing to be complete to). */
  loaded = false;
  /** The last `before` page said there is more. */
  hasOlder = false;

  get size(): number {
    return this.messages.size;
  }

  has(messageId: string): boolean {
    return this.messages.has(messageId);
  }

  /** Adds what is new (not held, not deleted); returns the added messages, in seq order. */
  add(batch: Iterable<TimelineMessage>): TimelineMessage[] {
    const added: TimelineMessage[] = [];
    for (const message of batch) {
      if (this.messages.has(message.messageId) || this.deleted.has(message.messageId)) continue;
      this.messages.set(message.messageId, message);
      if (!this.oldest || message.seq < this.oldest.seq) this.oldest = { messageId: message.messageId, seq: message.seq };
      added.push(message);
    }
    return added.sort((a, b) => a.seq - b.seq);
  }

  /**
   * Merges a page that reaches the newest message on the server: the first page (newest
   * first). The timeline is then complete up to the page's newest seq; broadcasts that
   * overtook the page do not count, since what came between them and the page is unknown.
   */
  markComplete(page: readonly TimelineMessage[]): TimelineMessage[] {
    const added = this.add(page);
    for (const message of page) if (this.complete === null || message.seq > this.complete) this.complete = message.seq;
    this.loaded = true;
    return added;
  }

  /** The newest seq the timeline is complete to (null before the first page or in an empty room). */
  get newestSeq(): number | null {
    return this.complete;
  }

  /** The oldest seq seen: a message older than it is scroll-back's to show, while `hasOlder`. */
  get oldestSeq(): number | null {
    return this.oldest?.seq ?? null;
  }

  /** The `before` anchor for scrolling back. */
  get oldestId(): string | null {
    return this.oldest?.messageId ?? null;
  }

  remove(messageId: string): boolean {
    this.deleted.add(messageId);
    return this.messages.delete(messageId);
  }

  get(messageId: string): TimelineMessage | undefined {
    return this.messages.get(messageId);
  }

  /** Held messages, oldest first. */
  list(): TimelineMessage[] {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }
}
