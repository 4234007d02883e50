import { describe, expect, it } from 'vitest';
import { TYPING_BURST, TYPING_PER_SECOND, TypingThrottle } from '../src/realtime/typing-throttle.ts';

/** The budget per (user, room) behind `typing` (PROTOCOL §15), on a clock the test moves. */
function throttle(maxBudgets?: number) {
  const clock = { now: 1_000_000 };
  const subject = new TypingThrottle(TYPING_BURST, TYPING_PER_SECOND, () => clock.now, maxBudgets);
  return { subject, clock };
}

describe('TypingThrottle', () => {
  it('a burst, then the rate; shared by everything the user says in that room, apart from other users and rooms', () => {
    const { subject, clock } = throttle();
    const admitted = Array.from({ length: 10 }, () => subject.admit('u', 'r', true)).filter(Boolean).length;
    expect(admitted).toBe(TYPING_BURST);
    expect(subject.admit('u', 'r', true)).toBe(false);
    // Another room, another user: budgets of their own.
    expect(subject.admit('u', 'other-room', true)).toBe(true);
    expect(subject.admit('other-user', 'r', true)).toBe(true);
    clock.now += 1000 / TYPING_PER_SECOND;
    expect(subject.admit('u', 'r', true)).toBe(true);
    expect(subject.admit('u', 'r', true)).toBe(false);
  });

  it('the `false` that ends a `true` always passes, and is charged: the next `true` waits for it', () => {
    const { subject, clock } = throttle();
    for (let i = 0; i < TYPING_BURST; i++) expect(subject.admit('u', 'r', true)).toBe(true);
    expect(subject.admit('u', 'r', false)).toBe(true);
    // A `false` that ends nothing (the last one sent was a `false`) is charged like a `true`.
    expect(subject.admit('u', 'r', false)).toBe(false);
    // One token in debt: half a second brings it to zero, not enough.
    clock.now += 1000 / TYPING_PER_SECOND;
    expect(subject.admit('u', 'r', true)).toBe(false);
    clock.now += 1000 / TYPING_PER_SECOND;
    expect(subject.admit('u', 'r', true)).toBe(true);
    expect(subject.admit('u', 'r', false)).toBe(true);
  });

  it('alternating `true` / `false` as fast as possible gets no more than the rate after the burst', () => {
    const { subject, clock } = throttle();
    let admitted = 0;
    let ends = 0;
    const seconds = 10;
    for (let ms = 0; ms < seconds * 1000; ms++) {
      clock.now += 1;
      const isTyping = ms % 2 === 0;
      if (subject.admit('u', 'r', isTyping)) {
        admitted++;
        if (!isTyping) ends++;
      }
    }
    expect(admitted).toBeLessThanOrEqual(TYPING_BURST + 1 + TYPING_PER_SECOND * seconds);
    // Every admitted `true` was ended.
    expect(ends).toBe(admitted / 2);
  });

  it('forgets the budgets of users who stopped typing, and a forgotten `true` is still ended', () => {
    const { subject, clock } = throttle();
    for (let i = 0; i < TYPING_BURST; i++) subject.admit('typist', 'r', true);
    subject.admit('quiet', 'r', true);
    expect(subject.size).toBe(2);
    // A budget back to full is forgotten; one still spent is kept.
    clock.now += 1000;
    subject.sweep();
    expect(subject.size).toBe(1);
    clock.now += ((TYPING_BURST + 1) * 1000) / TYPING_PER_SECOND;
    subject.sweep();
    expect(subject.size).toBe(0);
    // "typist" said `true` last and its budget is gone: its `false` passes all the same.
    expect(subject.admit('typist', 'r', false)).toBe(true);
  });

  it('never holds more than its maximum of budgets', () => {
    const { subject } = throttle(100);
    for (let i = 0; i < 1000; i++) subject.admit(`user-${i}`, 'r', true);
    expect(subject.size).toBe(100);
  });
});
