import { connect, disconnect } from './connection.ts';
import { $, $input } from './dom.ts';
import { setStatus, toast } from './notices.ts';
import { refreshRooms } from './room-list.ts';
import { closeRoom, openRoom } from './room-view.ts';
import { forgetSession, savedRoomId, saveSession } from './saved-session.ts';
import type { Page } from './store.ts';

/** Signing in (dev login), signing out, and starting the app for a session. */

export async function signIn(page: Page, nickname: string): Promise<void> {
  const login = await page.api.login(nickname);
  const session = { token: login.accessToken, userId: login.userId, nickname: nickname.trim(), expiresAt: login.expiresAt };
  page.store.setSession(session);
  saveSession(session);
  startApp(page);
}

export function signOut(page: Page, message?: string): void {
  disconnect(page);
  page.sends.clear();
  page.store.setSession(null);
  forgetSession();
  closeRoom(page);
  setStatus('offline', '연결 안 됨');
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('me').textContent = '';
  $('sign-in').hidden = false;
  $input('nickname').focus();
  if (message) toast(page, message);
}

/** Shows the app, connects, and reopens the room this tab had open. */
export function startApp(page: Page): void {
  const session = page.store.state.session;
  if (!session) return;
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  $('me').textContent = session.nickname;
  connect(page, session, (message) => signOut(page, message));
  void refreshRooms(page);
  const saved = savedRoomId();
  if (saved) void openRoom(page, saved);
}
