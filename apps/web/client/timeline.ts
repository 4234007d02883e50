import type { NewMessagePayload } from '@chat/protocol';

/**
 * What the page keeps of a message: the common part of `new-message` and a history row,
 * derived from the protocol's type so the two cannot drift.
 */
export type TimelineMessage = Omit<NewMessagePayload, 'clientMessageId' | 'changeSeq' | 'sender'>;

/** Deleted ids remembered (so a late copy is not shown again); the oldest are forgotten past it. */
export const DELETED_KEPT = 1000;

/**
 * One room's messages, keyed by messageId, so the same message from a broadcast, an ack, a
 * history page and a catch-up is shown once. No DOM here (unit-tested in apps/web/test).
 *
 * Bounded: `trim` keeps the newest messages and drops the older ones (scrolling back reads them
 * again from the server), so a page left open on a busy room does not grow without end. Live
 * messages wait in `queued` to be put on screen together, once per frame.
 *
 * Missed messages are noticed and fetched by `changeSeq` (room-changes.ts, PROTOCOL §16), not
 * by `seq` here: every message is a change of the feed, so the feed's gaps cover them, and
 * deletes too. The oldest anchor may point at a deleted message: the server still finds it.
 */
export class Timeline {
  private readonly messages = new Map<string, TimelineMessage>();
  private readonly deleted = new Set<string>();
  /** Held messages not on screen yet (timeline-view.ts renders them at the next frame). */
  private readonly queued = new Set<string>();
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
    // A Set iterates in insertion order: the first is the longest known.
    for (const old of this.deleted) {
      if (this.deleted.size <= DELETED_KEPT) break;
      this.deleted.delete(old);
    }
    this.queued.delete(messageId);
    return this.messages.delete(messageId);
  }

  /**
   * Older than the oldest message held while there is more to scroll back to: scroll-back
   * shows it, in its place (shown now, it would sit above a gap).
   */
  isBehindWindow(seq: number): boolean {
    return this.hasOlder && this.oldest !== null && seq < this.oldest.seq;
  }

  /**
   * Keeps the newest `keep` messages and drops the others (and their place in the queue);
   * returns the dropped messageIds, oldest first, to take them off the page. Dropping any
   * means there are older messages again: `hasOlder`, and the scroll-back anchor moves to
   * the oldest message kept.
   */
  trim(keep: number): string[] {
    if (this.messages.size <= keep) return [];
    const held = this.list();
    const dropped = held.slice(0, held.length - keep);
    for (const message of dropped) {
      this.messages.delete(message.messageId);
      this.queued.delete(message.messageId);
    }
    const oldest = held[held.length - keep]!;
    this.oldest = { messageId: oldest.messageId, seq: oldest.seq };
    this.hasOlder = true;
    return dropped.map((message) => message.messageId);
  }

  /** Deleted ids remembered (at most DELETED_KEPT). */
  get deletedCount(): number {
    return this.deleted.size;
  }

  /** Messages waiting for the screen. */
  get queuedCount(): number {
    return this.queued.size;
  }

  /** Queues held messages for the screen; true when the queue was empty (a frame is to be asked for). */
  enqueue(messages: readonly TimelineMessage[]): boolean {
    const wasEmpty = this.queued.size === 0;
    for (const message of messages) if (this.messages.has(message.messageId)) this.queued.add(message.messageId);
    return wasEmpty && this.queued.size > 0;
  }

  /** The queued messages still held (not deleted or trimmed since), in seq order; empties the queue. */
  takeQueued(): TimelineMessage[] {
    const taken: TimelineMessage[] = [];
    for (const messageId of this.queued) {
      const message = this.messages.get(messageId);
      if (message) taken.push(message);
    }
    this.queued.clear();
    return taken.sort((a, b) => a.seq - b.seq);
  }

  get(messageId: string): TimelineMessage | undefined {
    return this.messages.get(messageId);
  }

  /** Held messages, oldest first. */
  list(): TimelineMessage[] {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }
}
