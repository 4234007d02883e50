import type { AnonymousMembershipPayload, NewMessagePayload, RoomChange, ServerPayload } from '@chat/protocol';
import { catchUpFailed, catchUpRoom, type CatchUpIo } from './catch-up.ts';
import { liveStep } from './change-feed.ts';
import { renderMembers, setTyping } from './members.ts';
import { showError } from './notices.ts';
import { removeFromRoomList, updateRoomListEntry } from './room-list.ts';
import { renderRoomHead } from './room-head.ts';
import type { OpenRoom, Page } from './store.ts';
import { fromPayload, loadFirstPage, notice, removeMessage, showLive } from './timeline-view.ts';

/**
 * The open room follows its change feed (PROTOCOL §16): each live change is applied as it
 * comes; a `changeSeq` that jumps, a reconnect or a `resync` fetches the changes after the
 * last one applied and applies them in order, deletes included. The same appliers serve both,
 * so a change looks the same on the page however it arrived.
 */

type Live = { readonly live: boolean };

/**
 * A live change event of the open room: false when it was applied already (drop it). A jump
 * starts a catch-up; the event is still applied now, the catch-up re-applies it in order.
 */
export function admitLive(page: Page, room: OpenRoom, changeSeq: number): boolean {
  const step = liveStep(room.changeSeq, changeSeq);
  if (step === 'seen') return false;
  if (step === 'next') page.store.advanceChangeSeq(room, changeSeq);
  if (step === 'gap') void catchUp(page, room);
  return true;
}

export function applyNewMessage(page: Page, room: OpenRoom, payload: NewMessagePayload, { live }: Live): void {
  if (live) setTyping(page, room, payload.userId, payload.nicknameMask, false);
  // Deleted since: the feed keeps its place without content, and its `message-deleted` follows.
  if (payload.content === null && payload.imageUrl === null) return;
  // Older than what is shown while there is more to scroll back to: showLive leaves it to scroll-back.
  showLive(page, room, fromPayload(payload));
}

export function applyMessageDeleted(page: Page, room: OpenRoom, messageId: string): void {
  removeMessage(page, room, messageId);
}

export function applyUserJoined(page: Page, room: OpenRoom, payload: ServerPayload<'user-joined'>, { live }: Live): void {
  const known = room.members.get(payload.userId);
  // A join read back from the feed says nothing about being online now (presence does).
  if (live || !known) page.store.memberJoined(room, payload.userId, payload.nicknameMask);
  page.store.setMemberCount(room, payload.memberCount);
  renderMembers(page, room);
  if (live) notice(`${payload.nicknameMask} 님이 들어왔습니다`);
}

export function applyUserLeft(page: Page, room: OpenRoom, payload: ServerPayload<'user-left'>, { live }: Live): void {
  const member = page.store.memberLeft(room, payload.userId);
  page.store.setMemberCount(room, payload.memberCount);
  setTyping(page, room, payload.userId, '', false);
  renderMembers(page, room);
  if (live) notice(`${member?.nicknameMask ?? '누군가'} 님이 나갔습니다`);
}

/**
 * A join or leave the feed names nobody in: read by a user who is no longer a member (left on
 * another device, or removed by the server API; PROTOCOL §16). Only the count is known.
 */
function applyMemberCount(page: Page, room: OpenRoom, memberCount: number): void {
  page.store.setMemberCount(room, memberCount);
  renderMembers(page, room);
}

/** `room-expiring`, and `room-lifetime-changed` (the server API moved the expiry): the countdown follows. */
export function applyRoomExpiring(page: Page, room: OpenRoom, expiresAt: string): void {
  page.store.setExpiresAt(room, expiresAt);
  renderRoomHead(page, room);
}

export function applyRoomExpired(page: Page, room: OpenRoom): void {
  removeFromRoomList(page, room.roomId);
  page.store.markExpired(room);
  renderRoomHead(page, room);
}

/** One change read from the feed; its `payload` is the live event's (PROTOCOL §16). */
function applyChange(page: Page, room: OpenRoom, change: RoomChange): void {
  const live = { live: false };
  switch (change.event) {
    case 'new-message':
      applyNewMessage(page, room, change.payload as NewMessagePayload, live);
      break;
    case 'message-deleted':
      applyMessageDeleted(page, room, (change.payload as ServerPayload<'message-deleted'>).messageId);
      break;
    case 'user-joined': {
      const payload = change.payload as ServerPayload<'user-joined'> | AnonymousMembershipPayload;
      updateRoomListEntry(page, room.roomId, { memberCount: payload.memberCount });
      if ('userId' in payload) applyUserJoined(page, room, payload, live);
      else applyMemberCount(page, room, payload.memberCount);
      break;
    }
    case 'user-left': {
      const payload = change.payload as ServerPayload<'user-left'> | AnonymousMembershipPayload;
      updateRoomListEntry(page, room.roomId, { memberCount: payload.memberCount });
      if ('userId' in payload) applyUserLeft(page, room, payload, live);
      else applyMemberCount(page, room, payload.memberCount);
      break;
    }
    case 'room-expiring':
    case 'room-lifetime-changed': {
      const { expiresAt } = change.payload as ServerPayload<'room-expiring' | 'room-lifetime-changed'>;
      updateRoomListEntry(page, room.roomId, { expiresAt });
      applyRoomExpiring(page, room, expiresAt);
      break;
    }
    case 'room-expired':
      applyRoomExpired(page, room);
      break;
    // Occupancy is for backends (webhooks); the page shows presence instead.
    case 'room-occupied':
    case 'room-vacated':
      break;
  }
}

/** The catch-up's effects on the page, for one room (catch-up.ts runs it). */
function feedOf(page: Page, room: OpenRoom): CatchUpIo<RoomChange> {
  return {
    loadFirstPage: () => loadFirstPage(page, room),
    changes: (after, limit) => page.api.changes(room.roomId, after, limit),
    apply: (change) => applyChange(page, room, change),
    expired: () => applyRoomExpired(page, room),
    report: (error) => showError(page, error),
    again: () => void catchUp(page, room),
    random: Math.random,
  };
}

/**
 * Fetches and applies the changes after the last one applied (or, before the first history
 * page is in, that page first); a transient failure is retried with backoff while the room
 * is on screen (catch-up.ts).
 */
export function catchUp(page: Page, room: OpenRoom): Promise<void> {
  return catchUpRoom(page.store, room, feedOf(page, room));
}

/** The first history page of a room just joined; a transient failure is retried as a catch-up (which loads it first). */
export async function openTimeline(page: Page, room: OpenRoom): Promise<void> {
  try {
    await loadFirstPage(page, room);
  } catch (error) {
    catchUpFailed(page.store, room, feedOf(page, room), error);
  }
}
