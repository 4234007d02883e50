import { $, el, timeLeft } from './dom.ts';
import { showError } from './notices.ts';
import { appendRoomPage, refreshRoomPage, ROOMS_PAGE } from './room-pages.ts';
import type { Page, RoomListChange } from './store.ts';

/** The list of open rooms on the left, page after page (room-pages.ts). */

/** Reads the first page again (every 20 s, after a reconnect, on ↻); the pages below it stay. */
export async function refreshRooms(page: Page): Promise<void> {
  const { store } = page;
  try {
    const fresh = await page.api.rooms(ROOMS_PAGE);
    page.roomListOutage.succeeded();
    const list = refreshRoomPage({ rooms: store.state.rooms, hasMore: store.state.roomsHasMore }, fresh, store.now());
    store.setRooms(list.rooms, list.hasMore);
    renderRooms(page);
  } catch (error) {
    // Unreachable: said once, not at every refresh while it lasts.
    if (page.roomListOutage.failed(error)) showError(page, error);
  }
}

/** The next page, after the last room listed. */
export async function loadMoreRooms(page: Page): Promise<void> {
  const { store } = page;
  const last = store.state.rooms[store.state.rooms.length - 1];
  const button = $('more-rooms') as HTMLButtonElement;
  if (!last || !store.state.roomsHasMore || button.disabled) return;
  button.disabled = true;
  try {
    const next = await page.api.rooms(ROOMS_PAGE, last.roomId);
    const list = appendRoomPage(store.state.rooms, next);
    store.setRooms(list.rooms, list.hasMore);
    renderRooms(page);
  } catch (error) {
    showError(page, error);
  } finally {
    button.disabled = false;
  }
}

export function updateRoomListEntry(page: Page, roomId: string, change: RoomListChange): void {
  if (page.store.patchRoom(roomId, change)) renderRooms(page);
}

export function removeFromRoomList(page: Page, roomId: string): void {
  page.store.dropRoom(roomId);
  renderRooms(page);
}

export function renderRooms(page: Page): void {
  const { rooms, current } = page.store.state;
  $('room-list').replaceChildren(
    ...rooms.map((room) => {
      const button = el(
        'button',
        { className: 'room-item', dataset: { roomId: room.roomId } },
        el('span', { className: 'room-name', text: room.name }),
        el(
          'span',
          { className: 'room-info' },
          document.createTextNode(`${room.memberCount}명 · `),
          el('span', { className: 'time-left', text: timeLeft(room.expiresAt, page.store.now()), dataset: { expiresAt: room.expiresAt } }),
        ),
      );
      button.type = 'button';
      return el('li', { className: room.roomId === current?.roomId ? 'active' : '' }, button);
    }),
  );
  if (rooms.length === 0) $('room-list').append(el('li', { className: 'muted', text: '열린 방이 없습니다' }));
  $('more-rooms').hidden = !page.store.state.roomsHasMore;
}

/**
 * Calls `open` with the room picked in the list. One listener on the list (the entries are
 * redrawn often), and the list does not need to know what opening a room takes.
 */
export function onRoomPicked(open: (roomId: string) => void): void {
  $('room-list').addEventListener('click', (event) => {
    const item = event.target instanceof Element ? event.target.closest<HTMLElement>('.room-item') : null;
    const roomId = item?.dataset.roomId;
    if (roomId) open(roomId);
  });
}
