/**
 * Where a room's change feed (PROTOCOL §16) stands for the page: every change of a room has a
 * gap-free `changeSeq`, and the page remembers the last one it has applied (the cursor). No DOM
 * and no network: unit-tested in apps/web/test.
 */

/**
 * What a live event's `changeSeq` means against the cursor:
 * - `untracked`: no cursor yet (the first history page is still loading): apply it, it is new;
 * - `next`: the very next change: apply it and move the cursor;
 * - `gap`: numbers were skipped (broadcasts missed): apply it and catch up from the cursor;
 * - `seen`: at or below the cursor, already applied (a catch-up got there first): drop it.
 */
export type LiveStep = 'untracked' | 'next' | 'gap' | 'seen';

export function liveStep(cursor: number | null, changeSeq: number): LiveStep {
  if (cursor === null) return 'untracked';
  if (changeSeq <= cursor) return 'seen';
  return changeSeq === cursor + 1 ? 'next' : 'gap';
}

/** The changes of a page still to apply after `cursor`: in changeSeq order, each once. */
export function freshChanges<Change extends { readonly changeSeq: number }>(cursor: number, changes: readonly Change[]): Change[] {
  const fresh: Change[] = [];
  let last = cursor;
  for (const change of [...changes].sort((a, b) => a.changeSeq - b.changeSeq)) {
    if (change.changeSeq <= last) continue;
    fresh.push(change);
    last = change.changeSeq;
  }
  return fresh;
}

/**
 * The cursor to start from once the first history page is in: a lower bound of what the page
 * reflects, the higher of two. The join's `lastChangeSeq` (PROTOCOL §2): the page is read after
 * the join was answered, so it reflects every change up to it. And the newest `seq` shown: every
 * stored message is a change of the same feed, so the newest message's `changeSeq` is at least
 * its `seq`. (0 for an empty room joined before any change.) Catching up from a lower bound
 * re-reads some changes, which applying tolerates (messages by id, members in order).
 */
export function startingCursor(newestSeq: number | null, joinedChangeSeq: number | null): number {
  return Math.max(newestSeq ?? 0, joinedChangeSeq ?? 0);
}

/**
 * Whether a `room-left` is older than this page's own join of the room (PROTOCOL §2, §3): its
 * `changeSeq` (the leave's number) is below the join's `lastChangeSeq`, so the join came after
 * the leave and the user is a member. Such a `room-left` (the leave's pod answered the user's
 * devices late) is nothing here; the server follows it with `room-joined` again all the same.
 */
export function leftBeforeJoin(joinedChangeSeq: number | null, changeSeq: number): boolean {
  return joinedChangeSeq !== null && changeSeq < joinedChangeSeq;
}
