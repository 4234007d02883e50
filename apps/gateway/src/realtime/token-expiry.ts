import { DueSchedule } from '../lib/due-schedule.ts';
import { settled } from './drain.ts';
import type { ChatSocket } from './types.ts';

/**
 * When a socket's token expires, tells the client `token-expired` and disconnects it: a socket
 * lives no longer than the token it was opened with, however far away its `exp` is (past
 * setTimeout's ~24.8 days the timer is re-armed in steps; `maxStepMs` makes the steps shorter,
 * for tests). One schedule, one timer, for all the pod's sockets (lib/due-schedule.ts).
 *
 * The events the socket sent before `exp` are answered first, as a drain does (drain.ts):
 * closed at once, a burst of sends still waiting for their turn was stored and broadcast with
 * no answer to the client. Events it sends after `exp` are refused (`isTokenExpired`).
 */
export function createTokenExpiry(options: { maxStepMs?: number } = {}) {
  const schedule = new DueSchedule<ChatSocket>((socket) => {
    socket.emit('token-expired', {});
    void settled(socket).then(() => socket.disconnect(true));
  }, options);
  return {
    watch: (socket: ChatSocket) => schedule.add(socket, socket.data.user.tokenExpiresAtMs),
    /** The socket closed first. */
    forget: (socket: ChatSocket) => schedule.remove(socket, socket.data.user.tokenExpiresAtMs),
  };
}

export type TokenExpiry = ReturnType<typeof createTokenExpiry>;

/** An event the socket sends from its token's `exp` on is refused TOKEN_EXPIRED (PROTOCOL §1). */
export function isTokenExpired(socket: ChatSocket, now = Date.now()): boolean {
  return now >= socket.data.user.tokenExpiresAtMs;
}
