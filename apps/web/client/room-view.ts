import { CLIENT_EVENTS, ERRORS, type RoomJoinedPayload, type RoomLeftPayload } from '@chat/protocol';
import { ask } from './ack.ts';
import { ApiError } from './api.ts';
import { forgetTyping, stopTyping } from './composer.ts';
import { $, $input, timeLeft } from './dom.ts';
import { cancelCatchUpRetry } from './catch-up.ts';
import { reloadMembers, renderMembers, stopTypingTimers } from './members.ts';
import { showError, toast } from './notices.ts';
import { openTimeline } from './room-changes.ts';
import { renderRoomHead } from './room-head.ts';
import { refreshRooms, renderRooms, updateRoomListEntry } from './room-list.ts';
import { forgetRoomId, savedRoomId, saveRoomId } from './saved-session.ts';
import type { OpenRoom, Page } from './store.ts';
import { clearMessages } from './timeline-view.ts';

/** The room on screen: creating, joining and leaving it (its head is room-head.ts's). */


export async function createRoom(page: Page, name: string, ttlSeconds: number | undefined): Promise<void> {
  const created = await page.api.createRoom(name, ttlSeconds);
  await refreshRooms(page);
  await openRoom(page, created.roomId);
}

export async function openRoom(page: Page, roomId: string): Promise<void> {
  const { store } = page;
  // On screen already, unless it is shown left: then picking it joins it again.
  if (store.openAndJoined(roomId)) return;
  let info = store.state.rooms.find((room) => room.roomId === roomId);
  if (!info) {
    try {
      info = await page.api.room(roomId);
    } catch (error) {
      // Only a room that is gone is forgotten: after no answer or a 503 (a reload during a
      // failover) the next reload opens it again.
      if (error instanceof ApiError && error.status === 404) forgetSavedRoom(roomId);
      showError(page, error);
      return;
    }
  }
  if (info.expired) {
    forgetSavedRoom(roomId);
    toast(page, ERRORS.ROOM_EXPIRED.message);
    return;
  }
  closeRoom(page);
  const guest = store.state.session === null;
  const room = store.openRoom({ ...info, roomId }, { guest });
  $('room-empty').hidden = true;
  $('room-view').hidden = false;
  renderRoomHead(page, room);
  renderRooms(page);

  if (guest) {
    // Read only, over REST: signing in (or a reload) opens this room again.
    saveRoomId(roomId);
    await openTimeline(page, room);
    return;
  }
  // Join first, then read: whatever is sent after the join arrives live, the rest is in the page.
  // A blip during the join asks again once connected (a join is idempotent, PROTOCOL §2).
  const joined = await ask<RoomJoinedPayload>(
    page,
    (socket) => socket.emitWithAck(CLIENT_EVENTS.joinRoom, { roomId }),
    () => store.isCurrent(room),
  );
  if (!store.isCurrent(room)) return;
  if (!joined?.ok) {
    closeRoom(page);
    return;
  }
  store.setMemberCount(room, joined.data.memberCount);
  store.setJoinedChangeSeq(room, joined.data.lastChangeSeq);
  saveRoomId(roomId);
  updateRoomListEntry(page, roomId, { memberCount: room.memberCount });
  renderRoomHead(page, room);
  const [, members] = await Promise.all([openTimeline(page, room), reloadMembers(page, room)]);
  // Left again at once (another device): its `room-left` may have come before the join's answer.
  if (members === 'not-member') showLeft(page, room);
  if (store.isCurrent(room) && !room.left) $input('message-input').focus();
}

/** A reload no longer reopens `roomId` (if it is the one it would). */
function forgetSavedRoom(roomId: string): void {
  if (savedRoomId() === roomId) forgetRoomId();
}

export async function leaveRoom(page: Page): Promise<void> {
  const room = page.store.state.current;
  if (!room) return;
  // Left already (on another device, or removed): there is nothing to tell the server.
  if (room.left) {
    closeLeftRoom(page, room);
    return;
  }
  stopTyping(page);
  page.store.setLeaving(room, true);
  const left = await ask<RoomLeftPayload>(page, (socket) => socket.emitWithAck(CLIENT_EVENTS.leaveRoom, { roomId: room.roomId }));
  page.store.setLeaving(room, false);
  // NOT_A_MEMBER_LEAVE: left elsewhere meanwhile; what was asked is done all the same.
  if (!left?.ok && left?.error.code !== 'NOT_A_MEMBER_LEAVE') return;
  if (page.store.isCurrent(room)) closeLeftRoom(page, room);
}

/**
 * `room-left` for the open room (PROTOCOL §3, §17). From this page's own `leave-room` it
 * closes the room (the answer may be lost); otherwise the user left on another device or a
 * backend removed them, and the room is shown left.
 */
export function roomLeft(page: Page, room: OpenRoom): void {
  if (room.leaving) closeLeftRoom(page, room);
  else showLeft(page, room);
}

function closeLeftRoom(page: Page, room: OpenRoom): void {
  if (page.store.isCurrent(room)) closeRoom(page);
  page.sends.cancelRoom(room.roomId);
  forgetRoomId();
  void refreshRooms(page);
}

/**
 * The user is no longer a member of the open room (left on another device, removed by a
 * backend, or the server said so): its timeline would stop and every send would be refused
 * `NOT_A_MEMBER`. It stays on screen as it was, with a note and the composer off; sends still
 * pending for it are called off; picking it in the list joins it again.
 */
export function showLeft(page: Page, room: OpenRoom): void {
  const { store } = page;
  if (!store.isCurrent(room) || room.left) return;
  // The socket is out of the room: an `isTyping: false` there would be ignored.
  forgetTyping(page);
  store.markLeft(room);
  page.sends.cancelRoom(room.roomId);
  stopTypingTimers(room);
  for (const userId of [...room.typing.keys()]) store.setTypist(room, userId, null);
  $('typing').textContent = '';
  // One member fewer: this user (the `user-left` went to the room, which this socket has left).
  const me = store.state.session?.userId;
  if (me && store.memberLeft(room, me)) {
    store.setMemberCount(room, Math.max(0, room.memberCount - 1));
    updateRoomListEntry(page, room.roomId, { memberCount: room.memberCount });
  }
  renderMembers(page, room);
  // A reload does not join it again on its own.
  forgetRoomId();
  renderRoomHead(page, room);
}

/**
 * `room-joined` for the room shown left: the user joined it again on another device, and this
 * page's socket was moved in with it (PROTOCOL §2), so its events arrive again. It opens to
 * sending again; what changed while it was left is the caller's to catch up on.
 */
export function showRejoined(page: Page, room: OpenRoom, memberCount: number): void {
  const { store } = page;
  if (!store.isCurrent(room) || !room.left) return;
  store.markRejoined(room);
  store.setMemberCount(room, memberCount);
  updateRoomListEntry(page, room.roomId, { memberCount });
  saveRoomId(room.roomId);
  renderRoomHead(page, room);
}

export function closeRoom(page: Page): void {
  stopTyping(page);
  const room = page.store.closeRoom();
  if (room) {
    stopTypingTimers(room);
    cancelCatchUpRetry(page.store, room);
  }
  clearMessages();
  $('member-list').replaceChildren();
  $('typing').textContent = '';
  $('room-view').hidden = true;
  $('room-empty').hidden = false;
  renderRooms(page);
}

/** Time left, every second, wherever it is shown. */
export function tick(page: Page): void {
  for (const element of document.querySelectorAll<HTMLElement>('[data-expires-at]')) {
    element.textContent = timeLeft(element.dataset.expiresAt ?? '', page.store.now());
  }
  const room = page.store.state.current;
  if (room) renderRoomHead(page, room);
}
