import { CLIENT_EVENTS, type NewMessagePayload } from '@chat/protocol';
import { ACK_TIMEOUT_MS } from './ack.ts';
import { randomId } from './dom.ts';
import { toast } from './notices.ts';
import { SendQueue, type AttemptResult, type OutgoingMessage, type QueuedSend, type SendResult } from './pending-send.ts';
import type { ChatSocket, Page } from './store.ts';
import { fromPayload, showLive } from './timeline-view.ts';

/** Sending messages, and telling the room that we are typing. */

export type { OutgoingMessage };

/** PROTOCOL §5: `isTyping: false` after 3 s without input. */
const TYPING_IDLE_MS = 3000;

const SENDS_WHEN_CONNECTED = '연결이 끊겨 있습니다. 다시 연결되면 보냅니다';
const NOT_SENT = '메시지를 보내지 못했을 수 있습니다. 다시 보내면 같은 메시지로 한 번만 전송됩니다';

/**
 * The page's sends (pending-send.ts): one `clientMessageId` per draft, retried on its own
 * after a reconnect, a timed-out ack, `UNAVAILABLE` or `RATE_LIMITED`, always with that id.
 */
export function createSendQueue(socket: () => ChatSocket | null): SendQueue<NewMessagePayload> {
  return new SendQueue<NewMessagePayload>({
    newId: randomId,
    isConnected: () => socket()?.connected === true,
    random: Math.random,
    attempt: async ({ roomId, message }: QueuedSend, clientMessageId: string): Promise<AttemptResult<NewMessagePayload>> => {
      const current = socket();
      if (!current?.connected) return { noAnswer: 'disconnected' };
      try {
        return await current
          .timeout(ACK_TIMEOUT_MS)
          .emitWithAck(
            CLIENT_EVENTS.sendMessage,
            message.type === 'image'
              ? { roomId, type: 'image', imageUrl: message.imageUrl, clientMessageId }
              : { roomId, type: message.type, content: message.content, clientMessageId },
          );
      } catch {
        // socket.io-client fails an ack at once when the socket drops with it in flight, or
        // after the timeout: either way nobody knows whether the message was stored.
        return { noAnswer: current.connected ? 'timeout' : 'disconnected' };
      }
    },
  });
}

/**
 * Sends to the open room; `ok` once the server has stored it (the caller then clears the
 * input), null when there is no room to send to. Pressing send again while the same draft is
 * on its way sends nothing more; once its retries stopped, it sends the draft again under the
 * same `clientMessageId`, so it is stored at most once.
 */
export async function send(page: Page, message: OutgoingMessage): Promise<SendResult<NewMessagePayload> | null> {
  const room = page.store.state.current;
  if (!room || room.left) return null;
  stopTyping(page);
  const queued: QueuedSend = { roomId: room.roomId, message };
  if (!page.store.state.socket?.connected && !page.sends.busy(queued)) toast(page, SENDS_WHEN_CONNECTED);
  const result = await page.sends.submit(queued);
  if (result.ok) {
    // The ack carries the stored message (the original, for a retry): show it even if the
    // broadcast is lost. The timeline holds it by messageId, so it shows once.
    if (page.store.isCurrent(room)) showLive(page, room, fromPayload(result.data), { now: true });
    return result;
  }
  // A refusal was shown by the server's `error` event; an unknown outcome is ours to tell.
  if (!result.final) toast(page, NOT_SENT);
  return result;
}

/** A keystroke: `isTyping: true` once, then `false` after a pause. */
export function onComposerInput(page: Page): void {
  const { current: room, socket, ownTyping } = page.store.state;
  if (!room || !socket?.connected) return;
  if (!ownTyping.sent) socket.emit(CLIENT_EVENTS.typing, { roomId: room.roomId, isTyping: true });
  clearTimeout(ownTyping.timer);
  page.store.setOwnTyping(true, window.setTimeout(() => stopTyping(page), TYPING_IDLE_MS));
}

export function stopTyping(page: Page): void {
  const { current: room, socket, ownTyping } = page.store.state;
  clearTimeout(ownTyping.timer);
  if (ownTyping.sent && room && socket?.connected) {
    socket.emit(CLIENT_EVENTS.typing, { roomId: room.roomId, isTyping: false });
  }
  page.store.setOwnTyping(false, 0);
}

/**
 * A new connection has told nobody that we are typing: the next keystroke must say so,
 * rather than wait out the idle timer of what was said on the old one.
 */
export function forgetTyping(page: Page): void {
  clearTimeout(page.store.state.ownTyping.timer);
  page.store.setOwnTyping(false, 0);
}
