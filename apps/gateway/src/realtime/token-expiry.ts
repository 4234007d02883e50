import { setLongTimeout } from '../lib/long-timeout.ts';
import type { ChatSocket } from './types.ts';

/**
 * When the socket's token expires, tells the client `token-expired` and disconnects it: a
 * socket lives no longer than the token it was opened with, however far away its `exp` is
 * (past setTimeout's ~24.8 days the timer is re-armed in steps; `maxStepMs` makes the steps
 * shorter, for tests). Returns what cancels it.
 */
export function disconnectAtTokenExpiry(socket: ChatSocket, options: { maxStepMs?: number } = {}): () => void {
  return setLongTimeout(
    () => {
      socket.emit('token-expired', {});
      socket.disconnect(true);
    },
    socket.data.user.tokenExpiresAtMs - Date.now(),
    options,
  );
}
