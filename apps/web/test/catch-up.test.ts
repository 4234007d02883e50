import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ERRORS } from '@chat/protocol';
import { ApiError, NETWORK_ERROR_MESSAGE, parseRetryAfter, type RoomView } from '../client/api.ts';
import { CATCH_UP_BACKOFF, CHANGES_PAGES_PER_RUN, catchUpFailed, catchUpRoom, type CatchUpIo } from '../client/catch-up.ts';
import { createStore, type OpenRoom, type Session } from '../client/store.ts';

type Change = { changeSeq: number };

const session: Session = { token: 't', userId: 'u1', nickname: '김철수', expiresAt: '2099-01-01T00:00:00.000Z' };
const roomView: RoomView = {
  roomId: 'r1',
  name: '방',
  memberCount: 1,
  createdAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-02T00:00:00.000Z',
  expired: false,
  messageCount: 0,
  lastMessageAt: null,
};
const unavailable = () => new ApiError(ERRORS.UNAVAILABLE.message, 503, 'UNAVAILABLE');
const badGateway = () => new ApiError('HTTP 502', 502, 'HTTP');
const offline = () => new ApiError(NETWORK_ERROR_MESSAGE, 0, 'NETWORK');

/**
 * A room's feed of `total` changes served `limit` at a time, failing the requests `failures`
 * names (by request number, from 1), and a first page that fails as `firstPageFailures` says.
 */
function feed(total: number, { failures = new Map<number, ApiError>(), firstPageFailures = [] as ApiError[] } = {}) {
  const store = createStore(session);
  const room: OpenRoom = store.openRoom(roomView);
  const requests: { after: number; at: number }[] = [];
  const applied: number[] = [];
  const reported: unknown[] = [];
  let expired = false;
  let firstPages = 0;
  const io: CatchUpIo<Change> = {
    loadFirstPage: async () => {
      firstPages += 1;
      const failure = firstPageFailures.shift();
      if (failure) throw failure;
      store.advanceChangeSeq(room, 0);
    },
    changes: async (after, limit) => {
      requests.push({ after, at: Date.now() });
      const failure = failures.get(requests.length);
      if (failure) throw failure;
      const changes = Array.from({ length: Math.max(0, Math.min(limit, total - after)) }, (_, i) => ({ changeSeq: after + i + 1 }));
      return { changes, hasMore: after + changes.length < total };
    },
    apply: (change) => applied.push(change.changeSeq),
    expired: () => {
      expired = true;
    },
    report: (error) => reported.push(error),
    again: () => void catchUpRoom(store, room, io),
    random: () => 0.5,
  };
  return {
    store,
    room,
    io,
    requests,
    applied,
    reported,
    get expired() {
      return expired;
    },
    get firstPages() {
      return firstPages;
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('catching the open room up', () => {
  it('goes on at once when a run stops at its page limit with more to read', async () => {
    // More than one run's worth (50 pages of 100).
    const total = CHANGES_PAGES_PER_RUN * 100 + 250;
    const room = feed(total);
    room.store.advanceChangeSeq(room.room, 0);
    await catchUpRoom(room.store, room.room, room.io);
    expect(room.room.changeSeq).toBe(total);
    expect(room.applied).toHaveLength(total);
    expect(new Set(room.applied).size).toBe(total);
    expect(room.requests).toHaveLength(CHANGES_PAGES_PER_RUN + 3);
  });

  it('retries a catch-up that failed (a 503, no answer, a 502) with growing waits until it gets through', async () => {
    const room = feed(30, { failures: new Map([[1, unavailable()], [2, offline()], [3, badGateway()]]) });
    room.store.advanceChangeSeq(room.room, 0);
    await catchUpRoom(room.store, room.room, room.io);
    expect(room.room.changeSeq).toBe(0);
    // Reported once for the series; nothing else fetches it in a quiet room, so it is retried.
    expect(room.reported).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(CATCH_UP_BACKOFF.maxMs * 3);
    expect(room.room.changeSeq).toBe(30);
    expect(room.applied).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(room.reported).toHaveLength(1);
    const waits = room.requests.slice(1).map((request, i) => request.at - room.requests[i]!.at);
    expect(waits).toHaveLength(3);
    expect(waits[0]).toBeGreaterThan(0);
    expect(waits[1]).toBeGreaterThan(waits[0]!);
    expect(waits[2]).toBeGreaterThan(waits[1]!);
    // Through: the next failure starts from the shortest wait again.
    expect(room.room.catchUpRetry).toEqual({ attempts: 0, timer: undefined });
  });

  it("waits out a 429's Retry-After before trying the catch-up again", async () => {
    // Past the REST budget (HTTP_RATE_LIMIT_PER_MINUTE): the server says when it comes back.
    const tooMany = new ApiError(ERRORS.TOO_MANY_REQUESTS.message, 429, 'TOO_MANY_REQUESTS', 40_000);
    const room = feed(3, { failures: new Map([[1, tooMany]]) });
    room.store.advanceChangeSeq(room.room, 0);
    await catchUpRoom(room.store, room.room, room.io);
    // The backoff alone would have tried again after a second, to be refused again.
    await vi.advanceTimersByTimeAsync(39_000);
    expect(room.requests).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(room.requests).toHaveLength(2);
    expect(room.room.changeSeq).toBe(3);
  });

  it('reads Retry-After in seconds or as an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00.000Z');
    expect(parseRetryAfter('40', now)).toBe(40_000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
  });

  it('retries a first page that failed, then follows the feed from the cursor it set', async () => {
    const room = feed(5, { firstPageFailures: [badGateway(), unavailable()] });
    await catchUpRoom(room.store, room.room, room.io);
    expect(room.room.changeSeq).toBeNull();
    await vi.advanceTimersByTimeAsync(CATCH_UP_BACKOFF.maxMs * 2);
    expect(room.firstPages).toBe(3);
    expect(room.room.changeSeq).toBe(5);
  });

  it("retries the first page of a room just opened (openTimeline's failure) as a catch-up", async () => {
    const room = feed(2, { firstPageFailures: [badGateway()] });
    await room.io.loadFirstPage().catch((error: unknown) => catchUpFailed(room.store, room.room, room.io, error));
    expect(room.room.changeSeq).toBeNull();
    await vi.advanceTimersByTimeAsync(CATCH_UP_BACKOFF.baseMs);
    expect(room.firstPages).toBe(2);
    expect(room.room.changeSeq).toBe(2);
  });

  it('keeps one retry scheduled however many failures come meanwhile', async () => {
    const room = feed(1, { firstPageFailures: [badGateway()] });
    catchUpFailed(room.store, room.room, room.io, badGateway());
    catchUpFailed(room.store, room.room, room.io, unavailable());
    expect(room.room.catchUpRetry.attempts).toBe(1);
    await vi.advanceTimersByTimeAsync(CATCH_UP_BACKOFF.maxMs * 2);
    expect(room.room.changeSeq).toBe(1);
  });

  it('stops retrying once the room is no longer on screen', async () => {
    const room = feed(10, { failures: new Map([[1, unavailable()]]) });
    room.store.advanceChangeSeq(room.room, 0);
    await catchUpRoom(room.store, room.room, room.io);
    room.store.closeRoom();
    await vi.advanceTimersByTimeAsync(CATCH_UP_BACKOFF.maxMs * 3);
    expect(room.requests).toHaveLength(1);
  });

  it('does not repeat what will not change (404, a 500 bug), and ends a room whose feed is gone (410)', async () => {
    for (const error of [new ApiError(ERRORS.ROOM_NOT_FOUND.message, 404, 'ROOM_NOT_FOUND'), new ApiError(ERRORS.INTERNAL.message, 500, 'INTERNAL')]) {
      const room = feed(10, { failures: new Map([[1, error]]) });
      room.store.advanceChangeSeq(room.room, 0);
      await catchUpRoom(room.store, room.room, room.io);
      await vi.advanceTimersByTimeAsync(CATCH_UP_BACKOFF.maxMs * 3);
      expect(room.requests).toHaveLength(1);
      expect(room.reported).toEqual([error]);
    }
    const gone = feed(10, { failures: new Map([[1, new ApiError(ERRORS.ROOM_EXPIRED.message, 410, 'ROOM_EXPIRED')]]) });
    gone.store.advanceChangeSeq(gone.room, 0);
    await catchUpRoom(gone.store, gone.room, gone.io);
    await vi.advanceTimersByTimeAsync(CATCH_UP_BACKOFF.maxMs * 3);
    expect(gone.expired).toBe(true);
    expect(gone.requests).toHaveLength(1);
  });
});
