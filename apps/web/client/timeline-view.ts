import type { NewMessagePayload } from '@chat/protocol';
import type { HistoryMessage } from './api.ts';
import { startingCursor } from './change-feed.ts';
import { $, clockTime, el, safeHttpUrl } from './dom.ts';
import { showError } from './notices.ts';
import type { OpenRoom, Page } from './store.ts';
import type { TimelineMessage } from './timeline.ts';

/**
 * The open room's messages on screen: live messages, the first page, scrolling back, deletes
 * and notices (catching up is room-changes.ts's). What is held is the room's Timeline.
 *
 * Bounded: with the reader at the bottom, the newest TIMELINE_KEPT messages stay and the older
 * ones leave the page and the timeline (scrolling back reads them again); a reader scrolled
 * back keeps up to TIMELINE_KEPT_SCROLLED_BACK. Live messages are put on screen together once
 * per frame (one layout read per frame, not per message).
 */

/** Messages kept while the reader is at the bottom. */
export const TIMELINE_KEPT = 500;
/** Messages kept whatever the reader does (scrolled back, or a background tab that renders no frames). */
export const TIMELINE_KEPT_SCROLLED_BACK = 2000;
/** Join and leave lines kept. */
const NOTICES_KEPT = 200;
/** A frame may never come (a background tab): the queue is rendered after this at the latest. */
const FRAME_FALLBACK_MS = 250;

export function fromPayload(message: NewMessagePayload | HistoryMessage): TimelineMessage {
  const { messageId, roomId, seq, userId, nicknameMask, type, content, imageUrl, createdAt } = message;
  return { messageId, roomId, seq, userId, nicknameMask, type, content, imageUrl, createdAt };
}

/**
 * One message as it happens (a broadcast, a send's ack, a change caught up): shown once, at
 * the next frame — or at once with `now` (the ack of the user's own send, together with what
 * else waits, its broadcast included if that came first). Missed messages are noticed by
 * `changeSeq` (room-changes.ts), not here.
 */
export function showLive(page: Page, room: OpenRoom, message: TimelineMessage, { now = false } = {}): void {
  const { timeline } = room;
  // Older than what is held while there is more to scroll back to: scroll-back shows it.
  if (timeline.isBehindWindow(message.seq)) return;
  const added = timeline.add([message]);
  if (added.length > 0) {
    if (timeline.size > TIMELINE_KEPT_SCROLLED_BACK) dropOldest(page, room, TIMELINE_KEPT_SCROLLED_BACK);
    if (timeline.enqueue(added) && !now) nextFrame(() => renderQueued(page, room));
  }
  if (now) renderQueued(page, room);
}

function nextFrame(run: () => void): void {
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    run();
  };
  requestAnimationFrame(once);
  window.setTimeout(once, FRAME_FALLBACK_MS);
}

/** The live messages queued since the last frame, in one go; the oldest leave if the reader is at the bottom. */
function renderQueued(page: Page, room: OpenRoom): void {
  if (!page.store.isCurrent(room)) {
    room.timeline.takeQueued();
    return;
  }
  // Rendered already (an own send's ack went first): no layout read for nothing.
  if (room.timeline.queuedCount === 0) return;
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  if (atBottom) dropOldest(page, room, TIMELINE_KEPT);
  const messages = room.timeline.takeQueued();
  const me = page.store.state.session?.userId;
  const mine = messages.some((message) => message.userId === me);
  renderMessages(page, room, messages, atBottom || mine ? 'bottom' : 'keep');
}

/**
 * Keeps the newest `keep` messages held and on screen: the others leave the timeline, their
 * elements the page, and so do the join and leave lines above the oldest message kept.
 */
function dropOldest(page: Page, room: OpenRoom, keep: number): void {
  const dropped = room.timeline.trim(keep);
  if (dropped.length === 0) return;
  for (const messageId of dropped) {
    room.elements.get(messageId)?.remove();
    page.store.untrackElement(room, messageId);
  }
  if (!page.store.isCurrent(room)) return;
  const list = $('message-list');
  const oldest = room.timeline.oldestSeq;
  for (let node = list.firstElementChild; node; node = list.firstElementChild) {
    const seq = node instanceof HTMLElement ? node.dataset.seq : undefined;
    if (seq !== undefined && oldest !== null && Number(seq) >= oldest) break;
    node.remove();
  }
  renderOlderButton(room);
}

/** The newest page, which starts the room's cursor; rejects when it could not be read (the caller retries). */
export async function loadFirstPage(page: Page, room: OpenRoom): Promise<void> {
  const history = await page.api.history(room.roomId, { limit: 50 });
  if (!page.store.isCurrent(room)) return;
  const firstLoad = !room.timeline.loaded;
  renderMessages(page, room, room.timeline.markComplete(history.messages.map(fromPayload)), 'bottom');
  if (firstLoad) room.timeline.hasOlder = history.hasMore;
  renderOlderButton(room);
  // Broadcasts that overtook the page are held already; from here `changeSeq` is followed.
  if (room.changeSeq === null) page.store.advanceChangeSeq(room, startingCursor(room.timeline.newestSeq, room.joinedChangeSeq));
}

export async function loadOlder(page: Page, room: OpenRoom): Promise<void> {
  const before = room.timeline.oldestId;
  if (room.loadingOlder || !room.timeline.hasOlder || !before) return;
  page.store.setLoadingOlder(room, true);
  try {
    const history = await page.api.history(room.roomId, { before, limit: 50 });
    if (!page.store.isCurrent(room)) return;
    const box = $('messages');
    const fromBottom = box.scrollHeight - box.scrollTop;
    renderMessages(page, room, room.timeline.add(history.messages.map(fromPayload)), 'keep');
    box.scrollTop = box.scrollHeight - fromBottom;
    room.timeline.hasOlder = history.hasMore;
  } catch (error) {
    // Another room is on screen by now: this one's failure is nothing to it.
    if (page.store.isCurrent(room)) showError(page, error);
  } finally {
    page.store.setLoadingOlder(room, false);
    // Another room may be on screen by now: the button is that room's.
    if (page.store.isCurrent(room)) renderOlderButton(room);
  }
}

function renderOlderButton(room: OpenRoom): void {
  $('load-older').hidden = !room.timeline.hasOlder;
}

/** Inserts message elements in `seq` order; scrolls down if the reader was at the bottom (`auto`). */
function renderMessages(page: Page, room: OpenRoom, messages: readonly TimelineMessage[], scroll: 'auto' | 'bottom' | 'keep' = 'auto'): void {
  if (messages.length === 0 || !page.store.isCurrent(room)) return;
  const me = page.store.state.session?.userId;
  const box = $('messages');
  const list = $('message-list');
  const atBottom = scroll === 'auto' && box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  for (const message of messages) {
    const element = messageElement(page, message, message.userId === me);
    page.store.trackElement(room, message.messageId, element);
    // After the last message with a smaller seq (notices stay where they were).
    let after: Element | null = null;
    for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
      if (node instanceof HTMLElement && node.dataset.seq !== undefined && Number(node.dataset.seq) < message.seq) {
        after = node;
        break;
      }
    }
    if (after) after.after(element);
    else list.prepend(element);
  }
  const mine = messages.some((message) => message.userId === me);
  if (scroll === 'bottom' || (scroll === 'auto' && (atBottom || mine))) box.scrollTop = box.scrollHeight;
}

function messageElement(page: Page, message: TimelineMessage, mine: boolean): HTMLElement {
  const item = el(
    'li',
    { className: `message ${message.type}${mine ? ' mine' : ''}`, dataset: { messageId: message.messageId, seq: String(message.seq) } },
    el(
      'div',
      { className: 'meta' },
      el('span', { className: 'author', text: mine ? `${message.nicknameMask} (나)` : message.nicknameMask }),
      el('time', { text: clockTime(message.createdAt), title: message.createdAt }),
    ),
    messageBody(message),
  );
  if (mine) {
    const remove = el('button', { className: 'delete ghost', text: '삭제', title: '메시지 삭제' });
    remove.type = 'button';
    remove.addEventListener('click', () => void deleteMessage(page, message.messageId));
    item.querySelector('.meta')?.append(remove);
  }
  return item;
}

function messageBody(message: TimelineMessage): HTMLElement {
  if (message.type === 'image') {
    const url = safeHttpUrl(message.imageUrl);
    if (!url) return el('p', { className: 'body', text: message.imageUrl ?? '' });
    const image = el('img', { className: 'picture' });
    image.alt = '이미지';
    image.loading = 'lazy';
    image.referrerPolicy = 'no-referrer';
    image.src = url;
    const link = el('a', { className: 'body' }, image);
    link.href = url;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    return link;
  }
  return el('p', { className: 'body', text: message.content ?? '' });
}

export function removeMessage(page: Page, room: OpenRoom, messageId: string): void {
  room.timeline.remove(messageId);
  room.elements.get(messageId)?.remove();
  page.store.untrackElement(room, messageId);
}

async function deleteMessage(page: Page, messageId: string): Promise<void> {
  try {
    await page.api.deleteMessage(messageId);
    const room = page.store.state.current;
    if (room) removeMessage(page, room, messageId);
  } catch (error) {
    showError(page, error);
  }
}

/** A line between messages: someone came or went (the oldest lines go past NOTICES_KEPT). */
export function notice(text: string): void {
  const box = $('messages');
  const list = $('message-list');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  list.append(el('li', { className: 'notice', text }));
  const notices = list.getElementsByClassName('notice');
  while (notices.length > NOTICES_KEPT) notices[0]?.remove();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

/** Empties the message area when a room closes. */
export function clearMessages(): void {
  $('message-list').replaceChildren();
}
