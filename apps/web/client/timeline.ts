import type { NewMessagePayload } from '@chat/protocol';

/**
 * What the page keeps of a message: the common part of `new-message` and a history row,
 * derived from the protocol's type so the two cannot drift.
 */
export type TimelineMessage = Omit<NewMessagePayload, 'clientMessageId' | 'changeSeq' | 'sender'>;

interface Anchor {
  messageId: string;
  seq: number;
}

/**
 * One room's messages, keyed by messageId, so the same message from a broadcast, an ack, a
 * history page and a catch-up is shown once. No DOM here (unit-tested in apps/web/test).
 *
 * `complete` is the newest message up to which the page has everything: a live message whose
 * `seq` jumps past it means broadcasts were missed, and `GET …/messages?after=<complete>`
 * fills the gap (PROTOCOL §4). Anchors may point at deleted messages: the server still finds
 * them.
 */
export class Timeline {
  private readonly messages = new Map<string, TimelineMessage>();
  private readonly deleted = new Set<string>();
  private complete: Anchor | null = null;
  private oldest: Anchor | null = null;
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
      if (!this.oldest || message.seq < this.oldest.seq) this.oldest = anchor(message);
      added.push(message);
    }
    return added.sort((a, b) => a.seq - b.seq);
  }

  /** A live `new-message`: true when it skips numbers after `complete`, i.e. a catch-up is due. */
  receive(message: TimelineMessage): { added: boolean; gap: boolean } {
    const added = this.add([message]).length > 0;
    if (!this.loaded) return { added, gap: false };
    const last = this.complete?.seq ?? 0;
    if (message.seq === last + 1) {
      this.complete = anchor(message);
      return { added, gap: false };
    }
    return { added, gap: message.seq > last + 1 };
  }

  /**
   * Merges a page that reaches the newest message on the server: the first page (newest
   * first) or the last page of an `after` catch-up. From here on the timeline is complete up
   * to the newest seq it holds or has seen in the page.
   */
  markComplete(page: readonly TimelineMessage[]): TimelineMessage[] {
    const added = this.add(page);
    let newest = this.complete;
    for (const message of page) if (!newest || message.seq > newest.seq) newest = anchor(message);
    this.complete = newest;
    this.loaded = true;
    return added;
  }

  /** True when messages are held past `complete` (broadcasts that overtook the first page). */
  aheadOfComplete(): boolean {
    const last = this.complete?.seq ?? 0;
    for (const message of this.messages.values()) if (message.seq > last) return true;
    return false;
  }

  /** The `after` anchor for a catch-up, or null when the first page must be loaded again. */
  get completeId(): string | null {
    return this.complete?.messageId ?? null;
  }

  /** The newest seq the timeline is complete to (null before the first page or in an empty room). */
  get newestSeq(): number | null {
    return this.complete?.seq ?? null;
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

function anchor(message: TimelineMessage): Anchor {
  return { messageId: message.messageId, seq: message.seq };
}
