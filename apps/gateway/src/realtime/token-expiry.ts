import type { ChatSocket } from './types.ts';

// setTimeout holds at most a signed 32-bit delay.
const MAX_TIMER_MS = 2_147_483_647;

/**
 * When the socket's token expires, tells the client `token-expired` and disconnects it: a
 * socket lives no longer than the token it was opened with. Returns what cancels it.
 */
export function disconnectAtTokenExpiry(socket: ChatSocket): () => void {
  const untilExpiry = socket.data.user.tokenExpiresAtMs - Date.now();
  // Over 24 days away, past what a timer holds: not timed.
  if (untilExpiry >= MAX_TIMER_MS) return () => undefined;
  const timer = setTimeout(() => {
    socket.emit('token-expired', {});
    socket.disconnect(true);
  }, Math.max(0, untilExpiry));
  timer.unref();
  return () => clearTimeout(timer);
}
