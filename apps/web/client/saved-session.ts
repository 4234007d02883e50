import type { Session } from './store.ts';

/**
 * What survives a reload, per tab (sessionStorage): two tabs of one browser can be two people.
 */
const SESSION_KEY = 'chat.session';
const ROOM_KEY = 'chat.room';

/** The stored session, unless it expires within the minute. */
export function loadSession(): Session | null {
  try {
    const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null') as Session | null;
    return stored && Date.parse(stored.expiresAt) > Date.now() + 60_000 ? stored : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function forgetSession(): void {
  sessionStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(ROOM_KEY);
}

export function savedRoomId(): string | null {
  return sessionStorage.getItem(ROOM_KEY);
}

export function saveRoomId(roomId: string): void {
  sessionStorage.setItem(ROOM_KEY, roomId);
}

export function forgetRoomId(): void {
  sessionStorage.removeItem(ROOM_KEY);
}
