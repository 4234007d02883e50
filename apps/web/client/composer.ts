import { CLIENT_EVENTS, type NewMessagePayload } from '@chat/protocol';
import { ask } from './ack.ts';
import { randomId } from './dom.ts';
import type { Page } from './store.ts';
import { fromPayload, showLive } from './timeline-view.ts';

/** Sending messages, and telling the room that we are typing. */

/** PROTOCOL §5: `isTyping: false` after 3 s without input. */
const TYPING_IDLE_MS = 3000;

export type OutgoingMessage = { type: 'text' | 'emoji'; content: string } | { type: 'image'; imageUrl: string };

/** True once the server has stored it (the caller then clears the input). */
export async function send(page: Page, body: OutgoingMessage): Promise<boolean> {
  const room = page.store.state.current;
  if (!room) return false;
  stopTyping(page);
  const clientMessageId = randomId();
  const answer = await ask<NewMessagePayload>(page, (socket) =>
    socket.emitWithAck(
      CLIENT_EVENTS.sendMessage,
      body.type === 'image'
        ? { roomId: room.roomId, type: 'image', imageUrl: body.imageUrl, clientMessageId }
        : { roomId: room.roomId, type: body.type, content: body.content, clientMessageId },
    ),
  );
  if (!answer?.ok) return false;
  // The ack carries the stored message: show it even if the broadcast is lost.
  if (page.store.isCurrent(room)) showLive(page, room, fromPayload(answer.data));
  return true;
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
