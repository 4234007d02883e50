import type { RoomView } from './api.ts';

/**
 * The room list as pages of `GET /api/rooms` (PROTOCOL §9: newest first, `before` the last
 * roomId held, `hasMore`). No DOM and no network: unit-tested in apps/web/test.
 */

/** Rooms asked per page (the server's most is 100). */
export const ROOMS_PAGE = 50;

export interface RoomPage {
  readonly rooms: readonly RoomView[];
  readonly hasMore: boolean;
}

/** The server's order: `createdAt` descending, then `roomId` descending. */
function listedBefore(a: RoomView, b: RoomView): boolean {
  return a.createdAt === b.createdAt ? a.roomId > b.roomId : a.createdAt > b.createdAt;
}

/** The list after the next page (`before` the last room held): appended, each room once. */
export function appendRoomPage(held: readonly RoomView[], next: RoomPage): RoomPage {
  const known = new Set(held.map((room) => room.roomId));
  return { rooms: [...held, ...next.rooms.filter((room) => !known.has(room.roomId))], hasMore: next.hasMore };
}

/**
 * The list after a refresh read the first page again. The pages the user scrolled to stay,
 * below the fresh page (re-reading them all every refresh would cost a request per page): the
 * held rooms listed after the fresh page's last, minus those past their `expiresAt` by `now`
 * (nothing else takes them off for a guest, who hears no `room-expired`). A fresh page with
 * nothing more after it is the whole list.
 */
export function refreshRoomPage(held: RoomPage, fresh: RoomPage, now: number): RoomPage {
  const last = fresh.rooms[fresh.rooms.length - 1];
  if (!fresh.hasMore || !last) return fresh;
  const known = new Set(fresh.rooms.map((room) => room.roomId));
  const older = held.rooms.filter((room) => !known.has(room.roomId) && listedBefore(last, room) && Date.parse(room.expiresAt) > now);
  return older.length === 0 ? fresh : { rooms: [...fresh.rooms, ...older], hasMore: held.hasMore };
}
