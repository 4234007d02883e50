import type { AckResponse } from '@chat/protocol';
import { toast } from './notices.ts';
import type { ChatSocket, Page } from './store.ts';

export const ACK_TIMEOUT_MS = 10_000;
const NO_ANSWER = '서버가 응답하지 않습니다. 잠시 후 다시 시도해주세요';

/** An acknowledged emit; null when the server did not answer in time (already reported). */
export async function ask<T>(page: Page, send: (socket: ChatSocket) => Promise<AckResponse<T>>): Promise<AckResponse<T> | null> {
  const socket = page.store.state.socket;
  if (!socket) return null;
  try {
    // A failure answer is also sent as the `error` event, which shows it: nothing to do here.
    return await send(socket.timeout(ACK_TIMEOUT_MS));
  } catch {
    toast(page, NO_ANSWER);
    return null;
  }
}
