import { describe, expect, it } from 'vitest';
import { freshChanges, leftBeforeJoin, liveStep, startingCursor } from '../client/change-feed.ts';
import { Timeline, type TimelineMessage } from '../client/timeline.ts';

const change = (changeSeq: number, event = 'new-message') => ({ changeSeq, event });
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

describe('following a room change feed', () => {
  it('applies the next change, catches up on a jump and drops what was applied', () => {
    expect(liveStep(null, 4)).toBe('untracked');
    expect(liveStep(3, 4)).toBe('next');
    expect(liveStep(3, 6)).toBe('gap');
    expect(liveStep(3, 3)).toBe('seen');
    expect(liveStep(3, 1)).toBe('seen');
    expect(liveStep(0, 1)).toBe('next');
  });

  it('applies a page of changes in changeSeq order, each once, and nothing at or below the cursor', () => {
    const page = [change(7, 'message-deleted'), change(5), change(6, 'user-joined'), change(6, 'user-joined'), change(4), change(8)];
    expect(freshChanges(5, page).map((c) => [c.changeSeq, c.event])).toEqual([
      [6, 'user-joined'],
      [7, 'message-deleted'],
      [8, 'new-message'],
    ]);
    expect(freshChanges(8, page)).toEqual([]);
    expect(freshChanges(0, [])).toEqual([]);
  });

  it('starts below what the first page shows: the join\'s lastChangeSeq or its newest seq, whichever is higher, or 0', () => {
    const timeline = new Timeline();
    expect(startingCursor(timeline.newestSeq, null)).toBe(0);
    expect(startingCursor(timeline.newestSeq, 3)).toBe(3);
    timeline.markComplete([message(12), message(11), message(10)]);
    expect(startingCursor(timeline.newestSeq, null)).toBe(12);
    // Joins, leaves and deletes number changes too: the join's cursor is then past the newest seq.
    expect(startingCursor(timeline.newestSeq, 20)).toBe(20);
    expect(timeline.oldestSeq).toBe(10);
  });

  it('removes a message a catch-up reports deleted, and a late copy never brings it back', () => {
    const timeline = new Timeline();
    timeline.markComplete([message(2), message(1)]);
    // Offline while m2 was deleted: the catch-up's message-deleted takes it off.
    expect(timeline.remove('m2')).toBe(true);
    expect(timeline.add([message(2)])).toEqual([]);
    expect(timeline.list().map((m) => m.messageId)).toEqual(['m1']);
  });
});

describe("a room-left against this page's own join (PROTOCOL §2)", () => {
  it('is older than the join only when its changeSeq is below the join\'s lastChangeSeq', () => {
    // The leave was change 7, the join found the feed at 9: the join came after, the user is in.
    expect(leftBeforeJoin(9, 7)).toBe(true);
    // A leave after the join, or the room-left that follows a repeat join answered as of the
    // same number (the read found the user gone): it holds.
    expect(leftBeforeJoin(9, 10)).toBe(false);
    expect(leftBeforeJoin(9, 9)).toBe(false);
    // Before this page's join was answered, nothing to compare with: it holds.
    expect(leftBeforeJoin(null, 3)).toBe(false);
  });
});
