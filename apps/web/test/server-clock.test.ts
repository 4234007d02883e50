import { afterEach, describe, expect, it, vi } from 'vitest';
import { CLOCK_NOISE_MS, clockOffsetMs } from '../client/server-clock.ts';
import { roomHeadState } from '../client/room-head-state.ts';
import { createStore } from '../client/store.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe("the server's clock", () => {
  const local = Date.parse('2026-01-01T12:00:00.000Z');

  it("reads the offset from a REST answer's Date header", () => {
    // The page's clock runs five minutes ahead of the server's.
    const serverDate = new Date(local - 5 * 60_000).toUTCString();
    expect(clockOffsetMs(serverDate, local - 100, local + 100)).toBe(-5 * 60_000 + 500);
    expect(clockOffsetMs(null, local, local)).toBeNull();
    expect(clockOffsetMs('not a date', local, local)).toBeNull();
  });

  it('takes an offset within the noise (the header is cut to the second) as none', () => {
    expect(clockOffsetMs(new Date(local).toUTCString(), local, local + 800)).toBe(0);
    expect(clockOffsetMs(new Date(local + CLOCK_NOISE_MS).toUTCString(), local, local)).toBe(CLOCK_NOISE_MS + 500);
  });

  it("counts a room's expiry on the server's clock: a page running ahead keeps sending open until the server's expiresAt", () => {
    vi.useFakeTimers();
    vi.setSystemTime(local);
    const store = createStore(null);
    // The room expires in two minutes on the server, whose clock is five minutes behind the page's.
    const room = { expiresAt: new Date(local - 5 * 60_000 + 2 * 60_000).toISOString(), expired: false, left: false, guest: false };
    store.setClockOffset(clockOffsetMs(new Date(local - 5 * 60_000).toUTCString(), local, local)!);
    expect(roomHeadState(room, store.now())).toEqual({ banner: 'expiring', closed: false });
    vi.setSystemTime(local + 2 * 60_000 + 1000);
    expect(roomHeadState(room, store.now())).toEqual({ banner: 'expired', closed: true });
  });
});
