import type { AckResponse } from '@chat/protocol';
import { toast } from './notices.ts';
import type { ChatSocket, Page } from './store.ts';

export const ACK_TIMEOUT_MS = 10_000;
const NO_ANSWER = '서버가 응답하지 않습니다. 잠시 후 다시 시도해주세요';

/**
 * An acknowledged emit; null when the server did not answer in time (already reported). With
 * `again`, one that a network blip cut off (the socket dropped with it in flight, which
 * socket.io-client fails at once, or it waited offline past the timeout) is asked once more
 * when the socket is back, if `again()` still wants it: for idempotent questions (a join).
 */
export async function ask<T>(
  page: Page,
  send: (socket: ChatSocket) => Promise<AckResponse<T>>,
  again?: () => boolean,
): Promise<AckResponse<T> | null> {
  const socket = page.store.state.socket;
  if (!socket) return null;
  try {
    // A failure answer is also sent as the `error` event, which shows it: nothing to do here.
    return await send(socket.timeout(ACK_TIMEOUT_MS));
  } catch {
    if (again && !socket.connected) {
      await connected(socket);
      if (page.store.state.socket === socket && again()) return ask(page, send);
      return null;
    }
    toast(page, NO_ANSWER);
    return null;
  }
}

/**
 * Resolves when `socket` connects again. A socket dropped for good (signing out) never does:
 * its waiter is left, holding nothing but this closure.
 */
function connected(socket: ChatSocket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.connected) resolve();
    else socket.once('connect', () => resolve());
  });
}
