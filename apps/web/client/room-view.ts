import { CLIENT_EVENTS, ERRORS, type RoomJoinedPayload, type RoomLeftPayload } from '@chat/protocol';
import { ask } from './ack.ts';
import { stopTyping } from './composer.ts';
import { $, $input, timeLeft } from './dom.ts';
import { reloadMembers, stopTypingTimers } from './members.ts';
import { showError, toast } from './notices.ts';
import { refreshRooms, renderRooms, updateRoomListEntry } from './room-list.ts';
import { forgetRoomId, saveRoomId } from './saved-session.ts';
import type { OpenRoom, Page } from './store.ts';
import { clearMessages, loadFirstPage } from './timeline-view.ts';

/** The room on screen: creating, joining and leaving it, and its head (name, time left, banner). */

const EXPIRING_SOON_MS = 5 * 60_000;

export async function createRoom(page: Page, name: string, ttlSeconds: number | undefined): Promise<void> {
  const created = await page.api.createRoom(name, ttlSeconds);
  await refreshRooms(page);
  await openRoom(page, created.roomId);
}

export async function openRoom(page: Page, roomId: string): Promise<void> {
  const { store } = page;
  if (store.currentIf(roomId)) return;
  let info = store.state.rooms.find((room) => room.roomId === roomId);
  if (!info) {
    try {
      info = await page.api.room(roomId);
    } catch (error) {
      forgetRoomId();
      showError(page, error);
      return;
    }
  }
  if (info.expired) {
    toast(page, ERRORS.ROOM_EXPIRED.message);
    return;
  }
  closeRoom(page);
  const room = store.openRoom({ ...info, roomId });
  $('room-empty').hidden = true;
  $('room-view').hidden = false;
  renderRoomHead(room);
  renderRooms(page);

  // Join first, then read: whatever is sent after the join arrives live, the rest is in the page.
  const joined = await ask<RoomJoinedPayload>(page, (socket) => socket.emitWithAck(CLIENT_EVENTS.joinRoom, { roomId }));
  if (!store.isCurrent(room)) return;
  if (!joined?.ok) {
    closeRoom(page);
    return;
  }
  store.setMemberCount(room, joined.data.memberCount);
  saveRoomId(roomId);
  updateRoomListEntry(page, roomId, { memberCount: room.memberCount });
  renderRoomHead(room);
  await Promise.all([loadFirstPage(page, room), reloadMembers(page, room)]);
  if (store.isCurrent(room)) $input('message-input').focus();
}

export async function leaveRoom(page: Page): Promise<void> {
  const room = page.store.state.current;
  if (!room) return;
  stopTyping(page);
  const left = await ask<RoomLeftPayload>(page, (socket) => socket.emitWithAck(CLIENT_EVENTS.leaveRoom, { roomId: room.roomId }));
  if (!left?.ok) return;
  if (page.store.isCurrent(room)) closeRoom(page);
  forgetRoomId();
  void refreshRooms(page);
}

export function closeRoom(page: Page): void {
  stopTyping(page);
  const room = page.store.closeRoom();
  if (room) stopTypingTimers(room);
  clearMessages();
  $('member-list').replaceChildren();
  $('typing').textContent = '';
  $('room-view').hidden = true;
  $('room-empty').hidden = false;
  renderRooms(page);
}

export function renderRoomHead(room: OpenRoom): void {
  $('room-title').textContent = room.name;
  $('member-count').textContent = `${room.memberCount}명`;
  const left = $('room-time-left');
  left.dataset.expiresAt = room.expiresAt;
  left.textContent = timeLeft(room.expiresAt);
  const banner = $('room-banner');
  const remaining = Date.parse(room.expiresAt) - Date.now();
  if (room.expired || remaining <= 0) {
    banner.textContent = ERRORS.ROOM_EXPIRED.message;
    banner.dataset.kind = 'expired';
    banner.hidden = false;
  } else if (remaining <= EXPIRING_SOON_MS) {
    banner.textContent = `이 방은 ${timeLeft(room.expiresAt)} 후 만료됩니다`;
    banner.dataset.kind = 'expiring';
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
  const closed = room.expired;
  for (const control of $('composer').querySelectorAll<HTMLInputElement | HTMLButtonElement | HTMLSelectElement>('input, button, select')) {
    control.disabled = closed;
  }
  for (const button of $('emoji-bar').querySelectorAll('button')) button.disabled = closed;
}

/** Time left, every second, wherever it is shown. */
export function tick(page: Page): void {
  for (const element of document.querySelectorAll<HTMLElement>('[data-expires-at]')) {
    element.textContent = timeLeft(element.dataset.expiresAt ?? '');
  }
  const room = page.store.state.current;
  if (room) renderRoomHead(room);
}
