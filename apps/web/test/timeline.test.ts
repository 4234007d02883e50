import { describe, expect, it } from 'vitest';
import { DELETED_KEPT, Timeline, type TimelineMessage } from '../client/timeline.ts';

const message = (seq: number): TimelineMessage => ({
  messageId: `m${seq}`,
  roomId: 'r',
  seq,
  userId: 'u',
  nicknameMask: '김*',
  type: 'text',
  content: `message ${seq}`,
  imageUrl: null,
  createdAt: new Date(seq * 1000).toISOString(),
});
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => message(from + i));

describe('the page timeline', () => {
  it('shows a message once, whether it comes from a broadcast, an ack or a page', () => {
    const timeline = new Timeline();
    timeline.markComplete(range(1, 3).reverse());
    expect(timeline.add([message(4)])).toEqual([message(4)]);
    expect(timeline.add([message(4)])).toEqual([]);
    expect(timeline.markComplete(range(3, 5))).toEqual([message(5)]);
    expect(timeline.list().map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('is complete up to the first page, not to broadcasts that overtook it', () => {
    const timeline = new Timeline();
    timeline.add([message(9)]);
    expect(timeline.loaded).toBe(false);
    timeline.markComplete(range(1, 7).reverse());
    expect(timeline.loaded).toBe(true);
    // 8 is unknown: the change feed's catch-up starts at or below 7.
    expect(timeline.newestSeq).toBe(7);
    expect(timeline.list().map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 9]);
  });

  it('keeps a deleted message out, even when a late page still has it', () => {
    const timeline = new Timeline();
    timeline.markComplete(range(1, 3).reverse());
    expect(timeline.remove('m2')).toBe(true);
    expect(timeline.add([message(2)])).toEqual([]);
    expect(timeline.list().map((m) => m.seq)).toEqual([1, 3]);
  });

  it('scrolls back from the oldest message it has seen', () => {
    const timeline = new Timeline();
    timeline.markComplete(range(51, 100).reverse());
    expect(timeline.oldestId).toBe('m51');
    timeline.add(range(1, 50).reverse());
    expect(timeline.oldestId).toBe('m1');
    expect(timeline.size).toBe(100);
  });

  it('is complete to nothing in an empty room', () => {
    const timeline = new Timeline();
    timeline.markComplete([]);
    expect(timeline.newestSeq).toBeNull();
    expect(timeline.add([message(1)])).toEqual([message(1)]);
  });

  it('keeps the newest messages when trimmed, and scrolls back from the oldest one kept', () => {
    const timeline = new Timeline();
    timeline.markComplete(range(1, 50).reverse());
    expect(timeline.hasOlder).toBe(false);
    for (let seq = 51; seq <= 600; seq++) timeline.add([message(seq)]);
    expect(timeline.trim(500)).toEqual(range(1, 100).map((m) => m.messageId));
    expect(timeline.size).toBe(500);
    expect(timeline.list()[0]?.seq).toBe(101);
    // Dropped messages are on the server: scrolling back reads them again, from the oldest kept.
    expect(timeline.hasOlder).toBe(true);
    expect(timeline.oldestId).toBe('m101');
    expect(timeline.newestSeq).toBe(50);
    // A late copy of a dropped message is scroll-back's, not shown above a gap.
    expect(timeline.isBehindWindow(7)).toBe(true);
    expect(timeline.isBehindWindow(101)).toBe(false);
    expect(timeline.trim(500)).toEqual([]);
  });

  it('stays bounded on a page left open on a busy room', () => {
    const timeline = new Timeline();
    timeline.markComplete([]);
    for (let seq = 1; seq <= 20_000; seq++) {
      timeline.add([message(seq)]);
      timeline.enqueue([message(seq)]);
      if (seq % 7 === 0) timeline.remove(`m${seq}`);
      // What the view does once a frame.
      if (seq % 50 === 0) {
        timeline.trim(500);
        timeline.takeQueued();
      }
    }
    expect(timeline.size).toBeLessThanOrEqual(500);
    expect(timeline.deletedCount).toBeLessThanOrEqual(DELETED_KEPT);
    // The most recent deletes are still kept out.
    expect(timeline.add([message(19_999 - (19_999 % 7))])).toEqual([]);
  });

  it('renders live messages in a batch: one frame asked for, deleted and trimmed ones left out', () => {
    const timeline = new Timeline();
    timeline.markComplete([]);
    const frames: boolean[] = [];
    for (const seq of [3, 1, 2, 4, 5]) frames.push(timeline.enqueue(timeline.add([message(seq)])));
    expect(frames).toEqual([true, false, false, false, false]);
    timeline.remove('m4');
    expect(timeline.trim(3)).toEqual(['m1']);
    expect(timeline.queuedCount).toBe(3);
    expect(timeline.takeQueued().map((m) => m.seq)).toEqual([2, 3, 5]);
    expect(timeline.queuedCount).toBe(0);
    expect(timeline.takeQueued()).toEqual([]);
    // A message already held is not queued twice.
    expect(timeline.enqueue(timeline.add([message(5)]))).toBe(false);
    expect(timeline.enqueue([message(6)])).toBe(false);
  });
});
