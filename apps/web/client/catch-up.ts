import { ApiError } from './api.ts';
import { backoffMs } from './backoff.ts';
import { freshChanges } from './change-feed.ts';
import type { OpenRoom, Store } from './store.ts';

/**
 * Catching the open room up with its change feed (PROTOCOL §16): the run that fetches and
 * applies the changes after the last one applied, and what follows a failure — a retry with
 * backoff while the room is still on screen, since after a failover the socket may be back
 * while the catch-up got a 502, a 503 or no answer, and in a quiet room nothing else would
 * fetch what was missed. The page's effects are handed in (room-changes.ts): no DOM here,
 * unit-tested in apps/web/test.
 */

/** Changes per request, and requests per run (a run that stops there with more to read goes round again at once). */
export const CHANGES_PAGE = 100;
export const CHANGES_PAGES_PER_RUN = 50;
/** Waits between attempts of a failing catch-up or first page: 1 s, 2 s, 4 s, … up to 30 s, with jitter. */
export const CATCH_UP_BACKOFF = { baseMs: 1000, maxMs: 30_000 } as const;
/** The longest `Retry-After` waited (the REST budget is per minute). */
const RETRY_AFTER_MAX_MS = 60_000;

/** What a catch-up does to the page, for one room. */
export interface CatchUpIo<Change extends { readonly changeSeq: number }> {
  /** Loads the first history page, which sets the room's cursor; rejects when it could not. */
  loadFirstPage(): Promise<void>;
  changes(after: number, limit: number): Promise<{ readonly changes: readonly Change[]; readonly hasMore: boolean }>;
  apply(change: Change): void;
  /** The feed answered 410: the room expired long enough ago that its feed is gone. */
  expired(): void;
  report(error: unknown): void;
  /** Starts another catch-up of the room (a retry's). */
  again(): void;
  /** In [0, 1): the jitter of the backoff. */
  random(): number;
}

/**
 * A failure worth trying again: no answer (network, a pod gone), or a proxy, pod or limit that
 * says "later". Anything else (404, 403, a 500 bug) is reported and not repeated.
 */
export function isTransient(error: unknown): boolean {
  return error instanceof ApiError && [0, 408, 429, 502, 503, 504].includes(error.status);
}

/**
 * Fetches and applies the changes after the last one applied, page after page while
 * `hasMore`. Before the first history page is in there is no cursor: that page is loaded
 * instead. One run at a time per room; a request while one runs makes it go round once more.
 * A failure is retried later (`catchUpFailed`).
 */
export function catchUpRoom<Change extends { readonly changeSeq: number }>(store: Store, room: OpenRoom, io: CatchUpIo<Change>): Promise<void> {
  if (room.catchingUp) {
    store.setCatchUpAgain(room, true);
    return room.catchingUp;
  }
  const run = (async () => {
    try {
      do {
        store.setCatchUpAgain(room, false);
        if (room.changeSeq === null) {
          await io.loadFirstPage();
          if (!store.isCurrent(room) || room.changeSeq === null) return;
        }
        // Stopped at the page limit with more to read: the next run goes on at once.
        if (await readChanges(store, room, io)) store.setCatchUpAgain(room, true);
      } while (room.catchUpAgain && store.isCurrent(room));
      // Complete: a retry still scheduled has nothing left to do, and the next failure starts
      // from the shortest wait.
      cancelCatchUpRetry(store, room);
    } catch (error) {
      catchUpFailed(store, room, io, error);
    }
  })().finally(() => {
    store.setCatchingUp(room, null);
  });
  store.setCatchingUp(room, run);
  return run;
}

/** One run's pages; true when it stopped at CHANGES_PAGES_PER_RUN with more to read. */
async function readChanges<Change extends { readonly changeSeq: number }>(store: Store, room: OpenRoom, io: CatchUpIo<Change>): Promise<boolean> {
  for (let pages = 0; pages < CHANGES_PAGES_PER_RUN; pages++) {
    const cursor = room.changeSeq ?? 0;
    const { changes, hasMore } = await io.changes(cursor, CHANGES_PAGE);
    if (!store.isCurrent(room)) return false;
    for (const change of freshChanges(room.changeSeq ?? 0, changes)) {
      io.apply(change);
      store.advanceChangeSeq(room, change.changeSeq);
    }
    // A page that moved nothing forward is not followed (it would be asked again as is).
    if (!hasMore || changes.length === 0 || (room.changeSeq ?? 0) <= cursor) return false;
  }
  return true;
}

/**
 * A catch-up or first page failed. 410: the room is over. A transient failure is retried
 * with backoff and jitter while the room is on screen (and joined): reported once per series
 * (an outage shows no toast a second), not at all when there was no answer (the connection
 * status shows that). Anything else is reported.
 */
export function catchUpFailed<Change extends { readonly changeSeq: number }>(store: Store, room: OpenRoom, io: CatchUpIo<Change>, error: unknown): void {
  if (!store.isCurrent(room)) return;
  if (error instanceof ApiError && error.status === 410) {
    io.expired();
    return;
  }
  if (!isTransient(error)) {
    io.report(error);
    return;
  }
  const { attempts, timer } = room.catchUpRetry;
  if (timer !== undefined) return;
  const attempt = attempts + 1;
  if (attempt === 1 && !(error instanceof ApiError && error.status === 0)) io.report(error);
  const next = setTimeout(() => {
    store.setCatchUpRetry(room, attempt, undefined);
    if (store.isCurrent(room) && !room.left) io.again();
  }, retryDelayMs(error, attempt, io.random()));
  store.setCatchUpRetry(room, attempt, next);
}

/**
 * The backoff, but never before the server's `Retry-After` (a 429 past the REST budget, a 503):
 * a retry sooner would only be refused again, and spend the budget of the minute.
 */
function retryDelayMs(error: unknown, attempt: number, random: number): number {
  const backoff = backoffMs(attempt, random, CATCH_UP_BACKOFF);
  const told = error instanceof ApiError ? (error.retryAfterMs ?? 0) : 0;
  return Math.max(backoff, Math.min(told, RETRY_AFTER_MAX_MS));
}

/** No retry of this room's catch-up any more (it is complete, or the room closed). */
export function cancelCatchUpRetry(store: Store, room: OpenRoom): void {
  clearTimeout(room.catchUpRetry.timer);
  store.setCatchUpRetry(room, 0, undefined);
}
