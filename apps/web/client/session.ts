import { connect, disconnect } from './connection.ts';
import { $, $input, timeLeft } from './dom.ts';
import { setStatus, toast } from './notices.ts';
import { refreshRooms } from './room-list.ts';
import { closeRoom, openRoom } from './room-view.ts';
import { forgetSession, savedRoomId, saveRoomId, saveSession } from './saved-session.ts';
import { sessionPhase } from './session-expiry.ts';
import type { Page } from './store.ts';

/**
 * Signing in (dev login), signing out, the session's end, and starting the page. Without a
 * session the page is a guest's: the room list and rooms' history are read over REST, which
 * PROTOCOL §7, §9 and §16 open to guests; the socket needs a token (§1), so nothing is joined
 * or sent, and the sign-in form stays on top.
 */

const SESSION_ENDED = '로그인이 만료되었습니다. 닉네임으로 다시 입장하면 이어서 대화할 수 있습니다';

export async function signIn(page: Page, nickname: string): Promise<void> {
  const login = await page.api.login(nickname);
  const session = { token: login.accessToken, userId: login.userId, nickname: nickname.trim(), expiresAt: login.expiresAt };
  page.store.setSession(session);
  saveSession(session);
  start(page);
}

/** Signing out, or the server refusing the session (`message` says why): the page goes on as a guest's. */
export function signOut(page: Page, message?: string): void {
  endSession(page);
  start(page);
  if (message) toast(page, message);
}

/**
 * The token expired (the server's `token-expired`, a handshake refused `TOKEN_EXPIRED`, or its
 * `expiresAt` passed): said plainly, with the nickname ready to sign in again; the room on
 * screen stays, to read, and signing in joins it again.
 */
export function sessionExpired(page: Page): void {
  const { session, current } = page.store.state;
  if (!session) return;
  endSession(page);
  if (current) saveRoomId(current.roomId);
  start(page);
  $input('nickname').value = session.nickname;
  toast(page, SESSION_ENDED);
}

function endSession(page: Page): void {
  disconnect(page);
  page.sends.clear();
  page.store.setSession(null);
  forgetSession();
  closeRoom(page);
}

/** Shows the page for the session (or a guest), connects, and opens the room this tab had open. */
export function start(page: Page): void {
  const session = page.store.state.session;
  const guest = session === null;
  $('sign-in').hidden = !guest;
  $('sign-out').hidden = guest;
  $('me').textContent = session?.nickname ?? '';
  for (const id of ['create-room', 'leave-room', 'members', 'composer', 'emoji-bar']) $(id).hidden = guest;
  $('room-empty').textContent = guest ? '왼쪽에서 방을 골라 대화를 읽어보세요.' : '왼쪽에서 방을 고르거나 새로 만드세요.';
  if (session) connect(page, session, { refused: (message) => signOut(page, message), expired: () => sessionExpired(page) });
  else setStatus('offline', '읽기 전용');
  void refreshRooms(page);
  const saved = savedRoomId();
  if (saved) void openRoom(page, saved);
  else if (guest) $input('nickname').focus();
  renderSessionExpiry(page);
}

/** Every second: the warning shortly before the token expires, and the end once it has. */
export function renderSessionExpiry(page: Page): void {
  const session = page.store.state.session;
  const now = page.store.now();
  const phase = session ? sessionPhase(session.expiresAt, now) : 'active';
  if (session && phase === 'ended') {
    sessionExpired(page);
    return;
  }
  const banner = $('session-banner');
  banner.hidden = phase !== 'ending';
  if (session && phase === 'ending') {
    banner.textContent = `로그인이 ${timeLeft(session.expiresAt, now)} 후 만료됩니다. 만료되면 닉네임으로 다시 입장해야 대화할 수 있습니다`;
  }
}
