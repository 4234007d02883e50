import { ERRORS } from '@chat/protocol';
import { $, timeLeft } from './dom.ts';
import type { OpenRoom } from './store.ts';

/** The open room's head: name, member count, time left, the banner, and whether the composer is on. */

const EXPIRING_SOON_MS = 5 * 60_000;
const LEFT_NOTE = '이 방에서 나갔습니다. 목록에서 방을 누르면 다시 참여합니다';

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
  } else if (room.left) {
    banner.textContent = LEFT_NOTE;
    banner.dataset.kind = 'left';
    banner.hidden = false;
  } else if (remaining <= EXPIRING_SOON_MS) {
    banner.textContent = `이 방은 ${timeLeft(room.expiresAt)} 후 만료됩니다`;
    banner.dataset.kind = 'expiring';
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
  const closed = room.expired || room.left;
  for (const control of $('composer').querySelectorAll<HTMLInputElement | HTMLButtonElement | HTMLSelectElement>('input, button, select')) {
    control.disabled = closed;
  }
  for (const button of $('emoji-bar').querySelectorAll('button')) button.disabled = closed;
}
