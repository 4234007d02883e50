import { ERRORS } from '@chat/protocol';
import { $, timeLeft } from './dom.ts';
import { roomHeadState, type RoomBanner } from './room-head-state.ts';
import type { OpenRoom, Page } from './store.ts';

/** The open room's head: name, member count, time left, the banner, and whether the composer is on. */

const BANNER_TEXT: Record<RoomBanner, (room: OpenRoom, now: number) => string> = {
  expired: () => ERRORS.ROOM_EXPIRED.message,
  guest: () => '읽기 전용입니다. 위에서 닉네임으로 입장하면 이 방에 참여해 대화할 수 있습니다',
  left: () => '이 방에서 나갔습니다. 목록에서 방을 누르면 다시 참여합니다',
  expiring: (room, now) => `이 방은 ${timeLeft(room.expiresAt, now)} 후 만료됩니다`,
};

export function renderRoomHead(page: Page, room: OpenRoom): void {
  const now = page.store.now();
  $('room-title').textContent = room.name;
  $('member-count').textContent = `${room.memberCount}명`;
  const left = $('room-time-left');
  left.dataset.expiresAt = room.expiresAt;
  left.textContent = timeLeft(room.expiresAt, now);
  const { banner, closed } = roomHeadState(room, now);
  const box = $('room-banner');
  if (banner) {
    box.textContent = BANNER_TEXT[banner](room, now);
    box.dataset.kind = banner;
  }
  box.hidden = banner === null;
  for (const control of $('composer').querySelectorAll<HTMLInputElement | HTMLButtonElement | HTMLSelectElement>('input, button, select')) {
    control.disabled = closed;
  }
  for (const button of $('emoji-bar').querySelectorAll('button')) button.disabled = closed;
}
