import { isNotAMember } from './api.ts';
import { $, el } from './dom.ts';
import { updateRoomListEntry } from './room-list.ts';
import { showError } from './notices.ts';
import type { OpenRoom, Page } from './store.ts';

/** Who is in the open room: the member list with online dots, and who is typing. */

/** A lost `isTyping: false` must not leave someone typing for ever. */
const TYPING_SHOWN_MS = 6000;

/**
 * Reads the member list again. `not-member`: the server refused it because the user is not in
 * the room any more (403 NOT_A_MEMBER: left on another device, or removed): the caller shows
 * the room left. `failed` has been reported.
 */
export async function reloadMembers(page: Page, room: OpenRoom): Promise<'ok' | 'not-member' | 'failed'> {
  try {
    const { members, memberCount } = await page.api.members(room.roomId);
    if (!page.store.isCurrent(room)) return 'ok';
    page.store.setMembers(
      room,
      members.map((member) => [member.userId, { nicknameMask: member.nicknameMask, online: member.online }]),
    );
    page.store.setMemberCount(room, memberCount);
    renderMembers(page, room);
    updateRoomListEntry(page, room.roomId, { memberCount });
    return 'ok';
  } catch (error) {
    if (isNotAMember(error)) return 'not-member';
    showError(page, error);
    return 'failed';
  }
}

export function renderMembers(page: Page, room: OpenRoom): void {
  const me = page.store.state.session?.userId;
  $('member-count').textContent = `${room.memberCount}명`;
  const members = [...room.members.entries()].sort(([, a], [, b]) => Number(b.online) - Number(a.online));
  $('member-list').replaceChildren(
    ...members.map(([userId, member]) =>
      el(
        'li',
        { className: member.online ? 'online' : 'offline', dataset: { userId }, title: member.online ? '접속 중' : '오프라인' },
        el('span', { className: 'dot' }),
        document.createTextNode(userId === me ? `${member.nicknameMask} (나)` : member.nicknameMask),
      ),
    ),
  );
}

export function setTyping(page: Page, room: OpenRoom, userId: string, nicknameMask: string, isTyping: boolean): void {
  const existing = room.typing.get(userId);
  if (existing) clearTimeout(existing.timer);
  if (isTyping) {
    const timer = window.setTimeout(() => setTyping(page, room, userId, nicknameMask, false), TYPING_SHOWN_MS);
    page.store.setTypist(room, userId, { nicknameMask, timer });
  } else {
    page.store.setTypist(room, userId, null);
  }
  if (!page.store.isCurrent(room)) return;
  const names = [...room.typing.values()].map((entry) => entry.nicknameMask);
  $('typing').textContent = names.length ? `${names.join(', ')} 님이 입력 중…` : '';
}

/** A closed room shows nobody typing later. */
export function stopTypingTimers(room: OpenRoom): void {
  for (const { timer } of room.typing.values()) clearTimeout(timer);
}
