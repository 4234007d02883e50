import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError, NETWORK_ERROR_MESSAGE, isNotAMember, type RoomView } from '../client/api.ts';
import { ERRORS } from '@chat/protocol';
import { SendQueue, type QueuedSend } from '../client/pending-send.ts';
import { createStore, type Session } from '../client/store.ts';

const session: Session = { token: 't', userId: 'u1', nickname: '김철수', expiresAt: '2099-01-01T00:00:00.000Z' };
const roomView = (roomId: string): RoomView => ({
  roomId,
  name: `방 ${roomId}`,
  memberCount: 2,
  createdAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-02T00:00:00.000Z',
  expired: false,
  messageCount: 0,
  lastMessageAt: null,
});

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('a room the user left on another device, or was removed from (room-left)', () => {
  it('stays on screen shown left, and picking it in the list joins it again', () => {
    const store = createStore(session);
    const room = store.openRoom(roomView('a'));
    expect(room.left).toBe(false);
    // Joined and on screen: a click on it does nothing.
    expect(store.openAndJoined('a')).toBe(true);
    store.markLeft(room);
    expect(room.left).toBe(true);
    expect(store.currentIf('a')).toBe(room);
    // Shown left: a click opens it again, which joins.
    expect(store.openAndJoined('a')).toBe(false);
    expect(store.openAndJoined('b')).toBe(false);
    const again = store.openRoom(roomView('a'));
    expect(again.left).toBe(false);
    expect(store.openAndJoined('a')).toBe(true);
  });

  it("knows this page's own leave from one made elsewhere", () => {
    const store = createStore(session);
    const room = store.openRoom(roomView('a'));
    expect(room.leaving).toBe(false);
    store.setLeaving(room, true);
    expect(room.leaving).toBe(true);
  });

  it('reads a 403 NOT_A_MEMBER from the members route (a resync after being removed) as not being in the room', () => {
    expect(isNotAMember(new ApiError(ERRORS.NOT_A_MEMBER.message, 403, 'NOT_A_MEMBER'))).toBe(true);
    expect(isNotAMember(new ApiError(ERRORS.ROOM_NOT_FOUND.message, 404, 'ROOM_NOT_FOUND'))).toBe(false);
    expect(isNotAMember(new ApiError(NETWORK_ERROR_MESSAGE, 0, 'NETWORK'))).toBe(false);
    expect(isNotAMember(new Error('NOT_A_MEMBER'))).toBe(false);
  });

  it("calls off the room's pending sends, which would only be refused NOT_A_MEMBER", async () => {
    const attempts: string[] = [];
    let connected = false;
    const queue = new SendQueue<{ messageId: string }>({
      newId: () => `cid-${attempts.length}`,
      isConnected: () => connected,
      random: () => 0,
      attempt: async (send: QueuedSend) => {
        attempts.push(send.roomId);
        return { ok: true, data: { messageId: 'm' } };
      },
    });
    // Sent while offline: waiting for the connection.
    const inLeftRoom = queue.submit({ roomId: 'a', message: { type: 'text', content: '안녕' } });
    const inOtherRoom = queue.submit({ roomId: 'b', message: { type: 'text', content: '안녕' } });
    queue.cancelRoom('a');
    expect(await inLeftRoom).toEqual({ ok: false, final: true, code: 'CANCELLED' });
    connected = true;
    queue.connected();
    expect(await inOtherRoom).toMatchObject({ ok: true });
    expect(attempts).toEqual(['b']);
  });
});
