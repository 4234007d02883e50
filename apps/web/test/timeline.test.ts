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
    expect(timeline.receive(message(4))).toEqual({ added: true, gap: false });
    expect(timeline.receive(message(4))).toEqual({ added: false, gap: false });
    expect(timeline.markComplete(range(3, 5))).toEqual([message(5)]);
    expect(timeline.list().map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('reports a seq gap and catches up after the last complete message', () => {
    const timeline = new Timeline();
    timeline.markComplete([message(2), message(1)]);
    expect(timeline.receive(message(5))).toEqual({ added: true, gap: true });
    // The catch-up starts after 2, not after 5: 3 and 4 are still missing.
    expect(timeline.completeId).toBe('m2');
    timeline.markComplete(range(3, 5));
    expect(timeline.completeId).toBe('m5');
    expect(timeline.receive(message(6)).gap).toBe(false);
    expect(timeline.list().map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('does not judge gaps before the first page is in, and notices broadcasts that overtook it', () => {
    const timeline = new Timeline();
    expect(timeline.receive(message(9))).toEqual({ added: true, gap: false });
    timeline.markComplete(range(1, 7).reverse());
    expect(timeline.aheadOfComplete()).toBe(true);
    expect(timeline.completeId).toBe('m7');
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

  it('starts from seq 1 in an empty room', () => {
    const timeline = new Timeline();
    timeline.markComplete([]);
    expect(timeline.completeId).toBeNull();
    expect(timeline.receive(message(1))).toEqual({ added: true, gap: false });
    expect(timeline.receive(message(3)).gap).toBe(true);
  });
});
