import { describe, expect, it } from 'vitest';
import { Timeline, type TimelineMessage } from '../client/timeline.ts';

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
});
