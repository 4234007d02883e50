import { describe, expect, it } from 'vitest';
import type { RoomView } from '../client/api.ts';
import { appendRoomPage, refreshRoomPage } from '../client/room-pages.ts';

const now = Date.parse('2026-01-01T12:00:00.000Z');
/** Room `n` was created n minutes after noon: the server lists the highest n first. */
const room = (n: number, expiresInMs = 3_600_000): RoomView => ({
  roomId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
  name: `방 ${n}`,
  memberCount: 1,
  createdAt: new Date(now + n * 60_000).toISOString(),
  expiresAt: new Date(now + expiresInMs).toISOString(),
  expired: false,
  messageCount: 0,
  lastMessageAt: null,
});
const ids = (rooms: readonly RoomView[]) => rooms.map((entry) => entry.name);

describe('the room list, page after page', () => {
  it('appends the next page, each room once', () => {
    const next = appendRoomPage([room(9), room(8)], { rooms: [room(8), room(7)], hasMore: false });
    expect(ids(next.rooms)).toEqual(['방 9', '방 8', '방 7']);
    expect(next.hasMore).toBe(false);
  });

  it('keeps the pages scrolled to below a refreshed first page, and what more the server has', () => {
    const held = { rooms: [room(9), room(8), room(7), room(6), room(5)], hasMore: true };
    // Room 10 is new, room 8 is gone: the fresh first page (of 3) ends at room 7.
    const fresh = { rooms: [room(10), room(9), room(7)], hasMore: true };
    const next = refreshRoomPage(held, fresh, now);
    expect(ids(next.rooms)).toEqual(['방 10', '방 9', '방 7', '방 6', '방 5']);
    expect(next.hasMore).toBe(true);
  });

  it('drops held rooms past their expiry, and takes a fresh page with nothing after it as the whole list', () => {
    const held = { rooms: [room(9), room(8), room(7, -1)], hasMore: false };
    expect(ids(refreshRoomPage(held, { rooms: [room(9)], hasMore: true }, now).rooms)).toEqual(['방 9', '방 8']);
    expect(refreshRoomPage(held, { rooms: [room(9)], hasMore: false }, now)).toEqual({ rooms: [room(9)], hasMore: false });
    expect(refreshRoomPage(held, { rooms: [], hasMore: false }, now)).toEqual({ rooms: [], hasMore: false });
  });

  it('orders rooms created in the same millisecond by roomId, as the server does', () => {
    const same = (id: string): RoomView => ({ ...room(1), roomId: id, name: id });
    const next = refreshRoomPage({ rooms: [same('c'), same('b'), same('a')], hasMore: true }, { rooms: [same('c')], hasMore: true }, now);
    expect(ids(next.rooms)).toEqual(['c', 'b', 'a']);
  });
});
